"""``struct bpf_flow_keys``: what a flow_dissector program fills, decoded for Python.

A test run of a flow dissector hands back no packet: the kernel copies the
flow keys the program wrote into the output buffer instead. Fields marked
``__be`` in the UAPI header (n_proto, ports, addresses, flow_label) are in
network byte order there; here they are numbers and address strings.
"""
from __future__ import annotations

import ctypes as ct
import ipaddress

BPF_RET = {0: "BPF_OK", 2: "BPF_DROP", 129: "BPF_FLOW_DISSECTOR_CONTINUE"}
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
COLUMNS = ("nhoff", "thoff", "n_proto", "addr_proto", "ip_proto", "is_frag", "is_first_frag", "is_encap",
           "src", "dst", "sport", "dport", "flags", "flow_label")


class FlowKeys(ct.Structure):
    """struct bpf_flow_keys (include/uapi/linux/bpf.h), 56 bytes."""

    _fields_ = [("nhoff", ct.c_uint16), ("thoff", ct.c_uint16), ("addr_proto", ct.c_uint16),
                ("is_frag", ct.c_uint8), ("is_first_frag", ct.c_uint8), ("is_encap", ct.c_uint8),
                ("ip_proto", ct.c_uint8), ("n_proto", ct.c_uint8 * 2), ("sport", ct.c_uint8 * 2),
                ("dport", ct.c_uint8 * 2), ("addrs", ct.c_uint8 * 32),
                ("flags", ct.c_uint32), ("flow_label", ct.c_uint8 * 4)]


SIZE = ct.sizeof(FlowKeys)


def _be(raw) -> int:
    return int.from_bytes(bytes(raw), "big")


def _addrs(raw, addr_proto: int) -> tuple[str | None, str | None]:
    """The union of ipv4_src, ipv4_dst (8 bytes) and ipv6_src, ipv6_dst (32 bytes)."""
    data = bytes(raw)
    if addr_proto == ETH_P_IP:
        return str(ipaddress.IPv4Address(data[:4])), str(ipaddress.IPv4Address(data[4:8]))
    if addr_proto == ETH_P_IPV6:
        return str(ipaddress.IPv6Address(data[:16])), str(ipaddress.IPv6Address(data[16:]))
    return None, None   # the program said no addresses are valid


def decode(data: bytes) -> dict:
    """The flow keys as a dict: ports and protocols as numbers, addresses as text (None if not set)."""
    k = FlowKeys.from_buffer_copy(data[:SIZE].ljust(SIZE, b"\0"))
    src, dst = _addrs(k.addrs, k.addr_proto)
    return {"nhoff": k.nhoff, "thoff": k.thoff, "n_proto": _be(k.n_proto), "addr_proto": k.addr_proto,
            "ip_proto": k.ip_proto, "is_frag": bool(k.is_frag), "is_first_frag": bool(k.is_first_frag),
            "is_encap": bool(k.is_encap), "src": src, "dst": dst,
            "sport": _be(k.sport), "dport": _be(k.dport), "flags": k.flags, "flow_label": _be(k.flow_label)}


def flags_ctx(flags: int) -> ct.Array:
    """A ctx_in for the test run: the kernel accepts only ``flags`` set (BPF_FLOW_DISSECTOR_F_*)."""
    k = FlowKeys(flags=flags)
    return ct.create_string_buffer(bytes(k), SIZE)
