"""Chapter 13's exercise: a socket filter that keeps, whole, only the UDP packets to a secret port.

The check writes a random port into the learner's ``port`` array, runs the
program on crafted packets with ``BPF_PROG_TEST_RUN`` (which starts a socket
filter at the IP header), then sends several UDP flows, pings and a TCP
transfer through the lab network and reads what the packet socket kept and
what the ``kept`` counter says.
"""
from __future__ import annotations

import random
import time

from . import NotYet, exercise, require_map

_PORTS = range(20000, 60000)
_FLOWS = 4
_HINT_START = ("; it reads at offsets from the Ethernet header, but test_run starts the packet at the IP header: "
               "bpf_skb_load_bytes_relative(skb, off, &v, len, BPF_HDR_START_NET) reads the same bytes in both")


def _crafted(secret: int, other: int) -> list[tuple[str, object, bool]]:
    """(what it is, packet, keep?) for test_run."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert
    from scapy.layers.l2 import Ether

    ip = {"src": "192.0.2.1", "dst": "192.0.2.2"}
    payload = bytes(range(48))
    return [
        (f"a UDP packet to port {secret}", Ether() / IP(**ip) / UDP(sport=40000, dport=secret) / payload, True),
        (f"a UDP packet to port {other}", Ether() / IP(**ip) / UDP(sport=40000, dport=other) / payload, False),
        (f"a UDP packet from port {secret} to port {other}",
         Ether() / IP(**ip) / UDP(sport=secret, dport=other) / payload, False),
        (f"a TCP segment to port {secret}", Ether() / IP(**ip) / TCP(sport=40000, dport=secret) / payload, False),
        ("an ICMP echo request", Ether() / IP(**ip) / ICMP() / payload, False),
        (f"a UDP packet to port {secret} whose IPv4 header has an option (IHL 6: 24 bytes, the UDP header "
         f"starts at (first byte & 0x0f) * 4)",
         Ether() / IP(options=[IPOption_Router_Alert()], **ip) / UDP(sport=40000, dport=secret) / payload, True),
    ]


def _reads_from_ethernet(handle, pkt) -> bool:
    """Whether the program keeps ``pkt`` once a second Ethernet header sits in front of its IP header."""
    from scapy.layers.l2 import Ether

    return handle.test_run(bytes(Ether(type=0x0800)) + bytes(pkt)).retval != 0


def _test_runs(handle, secret: int, other: int) -> None:
    for what, pkt, keep in _crafted(secret, other):
        r = handle.test_run(pkt)
        ip_len = len(pkt) - 14
        if keep and r.retval == 0:
            hint = _HINT_START if _reads_from_ethernet(handle, pkt) else ""
            raise NotYet(f"test_run: your filter dropped {what}; it should keep it{hint}")
        if keep and r.retval < ip_len:
            raise NotYet(f"test_run: your filter kept only {r.retval} bytes of {what} ({ip_len} bytes from the "
                         f"IP header on); keep the whole packet: return skb->len")
        if not keep and r.retval != 0:
            raise NotYet(f"test_run: your filter kept {what} ({r.action}); it should drop it (return 0)")


def _hosts(handle, net) -> tuple[str, str]:
    """(the host whose interface the filter's socket is on, the host at the other end of its link)."""
    from ..errors import UsageError
    from ..packets import require_socket

    try:
        att = require_socket(handle)
    except UsageError:
        raise NotYet("your program is not attached to a packet socket: run it as %%bpf socket --dev b -n ...") \
            from None
    if att.target is not net:
        raise NotYet("your filter is not on the lab network: attach it with --dev b")
    iface = net.interface(att.point.split()[0])
    return iface.host, iface.peer[0]


def _kept_total(kept_map) -> int:
    df = kept_map.to_frame()
    return int(df.loc[df["key"] == 0, "value"].sum())


def _capture(handle, want: int, timeout: float = 5.0):
    """What the socket holds: until ``want`` packets are in, then whatever else is queued."""
    import pandas as pd

    frames, got, deadline = [], 0, time.monotonic() + timeout
    while got < want and time.monotonic() < deadline:
        df = handle.packets(0.2)
        frames.append(df)
        got += len(df)
    frames.append(handle.packets(0))
    return pd.concat(frames, ignore_index=True)


def _live(handle, net, kept_map, secret: int, ports: list[int]) -> tuple[int, int]:
    host, peer = _hosts(handle, net)
    flows = {p: (random.randint(3, 12), random.choice([32, 100, 300, 700])) for p in ports}
    handle.packets(0)                              # whatever an earlier run left queued
    before = _kept_total(kept_map)
    for p, (count, size) in flows.items():
        sent = net.udp(peer, host, count=count, size=size, port=p)
        if sent.attrs["received"] != count:
            raise NotYet(f"the lab network lost UDP packets to port {p}: is an XDP or tc program dropping them?")
    net.ping(peer, host, count=3)
    net.tcp(peer, host, nbytes=3000, port=secret)
    want, size = flows[secret]
    df = _capture(handle, want)
    mine = (df["protocol"] == "udp") & (df["dport"] == secret)
    if (~mine).any():
        extra = df.loc[~mine, "summary"]
        raise NotYet(f"on the lab network your filter also kept {len(extra)} other packet(s), "
                     f"e.g. {extra.iloc[0]}")
    if len(df) != want:
        raise NotYet(f"on the lab network {want} UDP packets went to port {secret}; your filter kept {len(df)}")
    full = 14 + 20 + 8 + size
    short = df[df["length"] != full]
    if len(short):
        raise NotYet(f"on the lab network your filter kept {short['length'].iloc[0]} of the {full} bytes of a "
                     f"packet to port {secret}: keep whole packets")
    counted = _kept_total(kept_map) - before
    if counted != want:
        raise NotYet(f"your filter kept {want} packets, but kept[0] went up by {counted}: count each packet "
                     f"you keep, and only those")
    return want, sum(c for c, _ in flows.values())


@exercise("13-udp-port", "13-socket-filter", "Keep only the UDP packets to a secret port, whole")
def udp_port(handle) -> str:
    from ..errors import MapError
    from ..netlab import lab_network

    port_map = require_map(handle, "port")
    kept_map = require_map(handle, "kept")
    net = lab_network(create=False)
    if net is None:
        raise NotYet("there is no lab network: run net = %bpf_net, then your %%bpf socket --dev b cell")
    ports = random.sample(_PORTS, _FLOWS)
    secret = random.choice(ports)
    try:
        port_map[0] = secret
    except MapError as exc:
        raise NotYet(f"the check cannot write your port map ({exc}): write the filter in a BCC cell") from None
    _test_runs(handle, secret, next(p for p in ports if p != secret))
    kept, sent = _live(handle, net, kept_map, secret, ports)
    return (f"test_run kept the 2 packets to port {secret} whole and dropped 4 others; on the lab network "
            f"it kept all {kept} of {sent} UDP packets that went to port {secret} (over {_FLOWS} ports), "
            f"whole, and nothing else, and kept[0] counted them")
