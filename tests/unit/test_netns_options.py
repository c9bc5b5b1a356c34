"""--netns, --real-netns, --sockets, --port checks, and struct bpf_flow_keys decoding (no kernel needed)."""
from __future__ import annotations

import ipaddress
import struct

import pytest

from ebpf_magic import cell, flowkeys
from ebpf_magic.attach.base import Options
from ebpf_magic.errors import UsageError
from ebpf_magic.families import family


@pytest.mark.parametrize("opts, match", [
    (Options(real_netns=True), "there is no --netns"),
    (Options(netns=""), "not a lab host"),
    (Options(netns="b c"), "not a lab host"),
    (Options(sockets=0), "from 1 to 64"),
    (Options(sockets=65), "from 1 to 64"),
    (Options(port=0), "from 1 to 65535"),
    (Options(port=70000), "from 1 to 65535"),
])
def test_option_checks(opts, match):
    with pytest.raises(UsageError, match=match):
        opts.check()


@pytest.mark.parametrize("sec, opts, ok", [
    ("sk_lookup", Options(netns="b"), True),
    ("flow_dissector", Options(netns="a"), True),
    ("sk_reuseport", Options(netns="b", sockets=2, port=7100, map="group"), True),
    ("xdp", Options(netns="b"), False),
    ("sk_lookup", Options(netns="b", sockets=2), False),
    ("tracepoint/syscalls/sys_enter_getpid", Options(port=80), False),
])
def test_options_apply_only_to_their_families(sec, opts, ok):
    text = "int f(void *ctx) { return 0; }"
    if ok:
        assert cell.make(text, sec, options=opts).options is opts
    else:
        with pytest.raises(UsageError, match="applies to"):
            cell.make(text, sec, options=opts)


def test_the_registry_attaches_the_namespace_families():
    for name in ("sk_lookup", "flow_dissector", "sk_reuseport"):
        fam = family(name)
        assert fam.target == "netns" and callable(fam.attach_function())


def _keys(**kw) -> bytes:
    addrs = kw.get("addrs", bytes(32))
    return struct.pack("<HHHBBBB2s2s2s32sI4s", kw.get("nhoff", 14), kw.get("thoff", 34), kw.get("addr_proto", 0),
                       0, 0, 0, kw.get("ip_proto", 0), kw.get("n_proto", b"\x08\x00"), kw.get("sport", b"\0\0"),
                       kw.get("dport", b"\0\0"), addrs, 0, kw.get("label", bytes(4)))


def test_flow_keys_are_56_bytes_decoded_in_host_order():
    assert flowkeys.SIZE == 56
    v4 = ipaddress.IPv4Address("192.0.2.1").packed + ipaddress.IPv4Address("192.0.2.2").packed
    k = flowkeys.decode(_keys(addr_proto=0x0800, ip_proto=17, sport=b"\x04\xd2", dport=b"\x16\x2e",
                              addrs=v4.ljust(32, b"\0")))
    assert (k["src"], k["dst"], k["sport"], k["dport"], k["n_proto"], k["ip_proto"]) == \
        ("192.0.2.1", "192.0.2.2", 1234, 5678, 0x0800, 17)
    v6 = ipaddress.IPv6Address("2001:db8::1").packed + ipaddress.IPv6Address("2001:db8::2").packed
    k6 = flowkeys.decode(_keys(addr_proto=0x86DD, n_proto=b"\x86\xdd", addrs=v6, label=b"\0\x01\x23\x45"))
    assert (k6["src"], k6["dst"], k6["flow_label"]) == ("2001:db8::1", "2001:db8::2", 0x12345)
    assert flowkeys.decode(_keys())["src"] is None      # addr_proto 0: the program set no addresses
