"""Chapter 14's exercise: an XDP port-range firewall with a per-protocol counter.

The learner's program sits on host b of the lab network. It must drop IPv4 UDP
datagrams whose destination port lies in 7000..7999, pass everything else,
and count every IPv4 packet it sees by IP protocol in ``per_proto``. The check
picks random ports and a random traffic mix, so no hard-coded answer passes:
first crafted packets through ``test_run`` (IP options, truncated headers,
ports on the range's edges), then real traffic from host a.
"""
from __future__ import annotations

import random

from . import NotYet, exercise

BLOCKED = range(7000, 8000)
_UDP, _TCP, _ICMP = 17, 6, 1


def _map_names(handle) -> list[str]:
    names = handle.map_names
    return list(names() if callable(names) else names)   # a method on BCC handles, a property on CO-RE ones


def _per_proto(handle) -> dict[int, int]:
    if "per_proto" not in _map_names(handle):
        have = ", ".join(_map_names(handle)) or "no maps"
        raise NotYet(f"the program needs an array map named 'per_proto' (IP protocol -> packets); it has {have}")
    df = handle["per_proto"].to_frame()
    if not {"key", "value"} <= set(df.columns):
        raise NotYet("per_proto must map a u32 key (the IP protocol number) to a u64 count")
    return {int(k): int(v) for k, v in df.groupby("key")["value"].sum().items()}   # per-CPU maps: add the CPUs up


def _ports(rng: random.Random) -> tuple[int, int]:
    """A blocked port and a passed one, neither reading the same in both byte orders."""
    def pick(lo, hi):
        while True:
            p = rng.randint(lo, hi)
            if p >> 8 != p & 0xFF and (((p & 0xFF) << 8) | p >> 8) not in BLOCKED:
                return p
    return pick(BLOCKED.start, BLOCKED.stop - 1), pick(1024, 6000) if rng.random() < 0.5 else pick(8000, 60000)


def _crafted(blocked: int, other: int, b_addr: str) -> list[tuple[str, object, str]]:
    """(what, packet, expected action) for the test run."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    ip = IP(src="192.0.2.1", dst=b_addr)
    # Router-alert option (type 148, length 4) whose 2-byte value is the blocked port: a program that
    # takes the UDP header to start right after 20 bytes reads that value as the destination port.
    alert = IPOption(bytes([148, 4, blocked >> 8, blocked & 0xFF]))
    ip_opt = IP(src="192.0.2.1", dst=b_addr, options=[alert])
    full_udp = bytes(Ether() / ip / UDP(sport=40000, dport=blocked))
    return [
        (f"UDP to blocked port {blocked}", Ether() / ip / UDP(sport=40000, dport=blocked) / bytes(8), "XDP_DROP"),
        (f"UDP to port {other}", Ether() / ip / UDP(sport=40000, dport=other) / bytes(8), "XDP_PASS"),
        ("UDP to port 7000 (first of the range)", Ether() / ip / UDP(dport=7000), "XDP_DROP"),
        ("UDP to port 7999 (last of the range)", Ether() / ip / UDP(dport=7999), "XDP_DROP"),
        ("UDP to port 6999 (just below the range)", Ether() / ip / UDP(dport=6999), "XDP_PASS"),
        ("UDP to port 8000 (just above the range)", Ether() / ip / UDP(dport=8000), "XDP_PASS"),
        (f"UDP from port {blocked} to port {other}", Ether() / ip / UDP(sport=blocked, dport=other), "XDP_PASS"),
        (f"TCP to port {blocked}", Ether() / ip / TCP(dport=blocked), "XDP_PASS"),
        ("ICMP echo request", Ether() / ip / ICMP(), "XDP_PASS"),
        (f"IPv6 UDP to port {blocked}", Ether() / IPv6(dst="2001:db8::2") / UDP(dport=blocked), "XDP_PASS"),
        (f"UDP to port {blocked} behind a 4-byte IP option", Ether() / ip_opt / UDP(dport=blocked), "XDP_DROP"),
        (f"UDP to port {other} behind an IP option that holds {blocked}", Ether() / ip_opt / UDP(dport=other),
         "XDP_PASS"),
        ("an IPv4 UDP packet cut off inside its UDP header", full_udp[:14 + 20 + 3], "XDP_PASS"),
    ]


@exercise("14-port-firewall", "14-xdp", "XDP: drop UDP to ports 7000-7999, count per IP protocol")
def port_firewall(handle) -> str:
    from ..netlab import lab_network

    net = lab_network(create=False)
    if net is None or net.closed:
        raise NotYet("there is no lab network: run net = %bpf_net first, then attach with --dev b")
    attached = str(handle.summary().get("attached", ""))
    if "b:eth0" not in attached:
        raise NotYet(f"attach the program to host b (%%bpf xdp --dev b ...); it is attached to: {attached or 'nothing'}")
    _per_proto(handle)
    rng = random.SystemRandom()
    blocked, other = _ports(rng)

    for what, pkt, want in _crafted(blocked, other, net.address("b", toward="a")):
        got = handle.test_run(pkt).action
        if got != want:
            raise NotYet(f"test_run: {what} gave {got}, expected {want}")

    before = _per_proto(handle)
    n_ping, n_pass, n_drop = rng.randint(3, 9), rng.randint(3, 9), rng.randint(3, 9)
    pings = net.ping("a", "b", count=n_ping, timeout=1.0)
    passed = net.udp("a", "b", count=n_pass, port=other, timeout=1.0)
    dropped = net.udp("a", "b", count=n_drop, port=blocked, timeout=0.3)
    if int(pings["replied"].sum()) != n_ping:
        raise NotYet(f"host a sent {n_ping} pings to b, {int(pings['replied'].sum())} got a reply: ICMP must pass")
    if int(passed["received"].sum()) != n_pass:
        raise NotYet(f"{n_pass} UDP datagrams to port {other} left a, b received {int(passed['received'].sum())}: "
                     "only ports 7000-7999 are blocked")
    if int(dropped["received"].sum()) != 0:
        raise NotYet(f"b received {int(dropped['received'].sum())} of {n_drop} UDP datagrams to blocked port {blocked}")
    after = _per_proto(handle)
    counted = {p: after.get(p, 0) - before.get(p, 0) for p in (_ICMP, _UDP)}
    want = {_ICMP: n_ping, _UDP: n_pass + n_drop}
    if counted != want:
        raise NotYet(f"real traffic: per_proto counted ICMP {counted[_ICMP]} and UDP {counted[_UDP]}, but b got "
                     f"{want[_ICMP]} pings and {want[_UDP]} UDP datagrams")
    return (f"13 crafted packets gave the right action (blocked port {blocked}, open port {other}); real traffic: "
            f"{n_ping} pings and {n_pass} datagrams passed, {n_drop} to port {blocked} dropped, all counted")
