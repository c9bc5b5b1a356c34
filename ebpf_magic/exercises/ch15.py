"""Chapter 15 (tc): rewrite the UDP destination port of packets arriving at host b.

The learner's program reads ``steer_to`` (u16 port -> u16 port, host byte
order), which the check fills with a random pair. The check runs the program
on crafted packets through ``BPF_PROG_TEST_RUN`` (the port, the UDP checksum,
and packets that must stay untouched), then sends real datagrams from host a
to the secret port and counts which of host b's sockets receive them.
"""
from __future__ import annotations

import ctypes as ct
import os
import random
import select
import socket
import time

from . import NotYet, exercise, require_map

_MAP = "steer_to"
_TC_PASS = ("TC_ACT_OK", "TC_ACT_UNSPEC")   # both let the packet on (tcx: UNSPEC is "next", then pass)


def _udp_checksum_ok(pkt) -> bool:
    """Whether the UDP checksum of a decoded Ether/IP/UDP packet is the one scapy computes afresh."""
    from scapy.layers.inet import UDP

    fresh = pkt.copy()
    del fresh[UDP].chksum
    return pkt[UDP].chksum == pkt.__class__(bytes(fresh))[UDP].chksum


def _write_secret(handle, port: int, to: int) -> None:
    view = require_map(handle, _MAP)
    if handle.engine == "core":
        from .. import libbpf

        info = view.info
        if info.key_size != 2 or info.value_size != 2:
            raise NotYet(f"{_MAP} must map a u16 port to a u16 port (its key is {info.key_size} bytes, "
                         f"its value {info.value_size})")
        key, value = ct.c_uint16(port), ct.c_uint16(to)
        if libbpf.lib().bpf_map_update_elem(info.fd, ct.byref(key), ct.byref(value), 0) != 0:
            raise NotYet(f"the check could not write {port} -> {to} into {_MAP}: is it a hash or array map?")
        return
    table = view.table
    if ct.sizeof(table.Key) != 2 or ct.sizeof(table.Leaf) != 2:
        raise NotYet(f"{_MAP} must map a u16 port to a u16 port: BPF_HASH({_MAP}, u16, u16)")
    view.clear()
    view[port] = to


def _crafted(handle, port: int, to: int, decoy: int) -> None:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether

    sport = random.randint(1024, 19999)
    base = Ether() / IP(src="192.0.2.1", dst="192.0.2.2")
    payload = os.urandom(24)
    pkt = base / UDP(sport=sport, dport=port) / payload
    r = handle.test_run(pkt)
    if r.action not in _TC_PASS:
        raise NotYet(f"test_run: a UDP packet to port {port} came back {r.action}; pass it on (TC_ACT_OK)")
    out = r.packet
    if UDP not in out:
        raise NotYet(f"test_run: the packet to port {port} is no longer UDP over IPv4: {out.summary()}")
    got = out[UDP]
    if got.dport != to:
        what = "kept its port" if got.dport == port else f"came out with destination port {got.dport}"
        swapped = " (the new port byte-swapped: the packet wants network byte order, htons)" \
            if got.dport == int.from_bytes(to.to_bytes(2, "little"), "big") else ""
        raise NotYet(f"test_run: a UDP packet to port {port} {what}{swapped}; {_MAP}[{port}] says {to}")
    if got.sport != sport or bytes(got.payload) != payload:
        raise NotYet(f"test_run: the source port or the payload changed (sport {sport} -> {got.sport}); "
                     "rewrite only the destination port")
    if not _udp_checksum_ok(out):
        raise NotYet(f"test_run: the port is {to} now, but the UDP checksum is still the old one: "
                     "update it with bpf_l4_csum_replace()")
    untouched = {
        f"a UDP packet to port {decoy} (no entry in {_MAP})": base / UDP(sport=sport, dport=decoy) / payload,
        f"a UDP packet from port {port} to port {decoy}": base / UDP(sport=port, dport=decoy) / payload,
        f"a TCP segment to port {port}": base / TCP(sport=sport, dport=port, flags="S"),
    }
    for what, p in untouched.items():
        r = handle.test_run(p)
        if r.action not in _TC_PASS:
            raise NotYet(f"test_run: {what} came back {r.action}; every packet goes on")
        if r["data_out"] != bytes(p):
            raise NotYet(f"test_run: {what} was changed ({r.packet.summary()}); leave it as it is")


def _real_traffic(net, port: int, to: int, decoy: int) -> int:
    """Datagrams from a to ``port`` and ``decoy``; returns how many were sent to ``port``."""
    count = random.randint(5, 12)
    addr = net.address("b", toward="a")
    socks = {p: net.run_in("b", socket.socket, socket.AF_INET, socket.SOCK_DGRAM) for p in (port, to, decoy)}
    tx = net.run_in("a", socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    got = dict.fromkeys(socks, 0)
    try:
        for p, s in socks.items():
            s.bind((addr, p))
            s.setblocking(False)
        for _ in range(count):
            tx.sendto(b"steer", (addr, port))
            tx.sendto(b"decoy", (addr, decoy))
        deadline = time.monotonic() + 3.0     # bounds only the failing case
        while (got[to] < count or got[decoy] < count) and (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(socks.values()), [], [], left)
            _drain(socks, ready, got)
        _drain(socks, list(socks.values()), got)
    finally:
        for s in (*socks.values(), tx):
            s.close()
    if got[decoy] != count:
        raise NotYet(f"real traffic: {got[decoy]} of {count} datagrams to port {decoy} (not in {_MAP}) "
                     "reached it; they must pass unchanged")
    if got[to] != count:
        where = f"{got[port]} still reached port {port}" if got[port] else "the rest were lost"
        raise NotYet(f"real traffic: host b's socket on port {to} got {got[to]} of the {count} datagrams "
                     f"a sent to port {port} ({where}); is the program attached to b's ingress "
                     "(%%bpf tcx/ingress --dev b)?")
    return count


def _drain(socks: dict, ready: list, got: dict) -> None:
    for p, s in socks.items():
        if s not in ready:
            continue
        while True:
            try:
                s.recv(64)
            except BlockingIOError:
                break
            got[p] += 1


def _port(lo: int) -> int:
    """A random port from ``lo`` on whose two bytes differ: byte-swapped, it is another port."""
    while (p := random.randint(lo, lo + 9999)) >> 8 == p & 0xFF:
        pass
    return p


@exercise("15-tc-port-rewrite", "15-tc", "Steer UDP to another port on b's ingress")
def port_rewrite(handle) -> str:
    from ..netlab import lab_network

    port, to, decoy = (_port(lo) for lo in (20000, 30000, 40000))
    _write_secret(handle, port, to)
    _crafted(handle, port, to, decoy)
    net = lab_network(create=False)
    if net is None:
        raise NotYet("there is no lab network: net = %bpf_net, then attach with --dev b")
    count = _real_traffic(net, port, to, decoy)
    return (f"test_run: UDP to port {port} left as port {to} with a valid checksum, three other packets "
            f"untouched; real traffic: {count} of {count} datagrams a sent to {port} reached b's port {to}")
