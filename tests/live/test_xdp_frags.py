"""xdp.frags in both engines: the program is loaded with BPF_F_XDP_HAS_FRAGS, so it sees packets
bigger than a page as a head plus fragments, and veth lets it attach in native mode under a jumbo MTU."""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from ebpf_magic.errors import AttachError
from tests.conftest import require

pytestmark = pytest.mark.live

JUMBO = 9000
# The whole length (bpf_xdp_get_buff_len) against the bytes the program can read directly.
BCC_LENGTHS = r"""
BPF_ARRAY(lengths, u64, 2);
int frag_len(struct xdp_md *ctx) {
    u32 whole = 0, head = 1;
    u64 total = bpf_xdp_get_buff_len(ctx), linear = ctx->data_end - ctx->data;
    lengths.update(&whole, &total);
    lengths.update(&head, &linear);
    return XDP_PASS;
}
"""

CORE_LENGTHS = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2);
         __type(key, u32); __type(value, u64); } lengths SEC(".maps");
SEC("xdp.frags")
int frag_len(struct xdp_md *ctx) {
    u32 whole = 0, head = 1;
    u64 total = bpf_xdp_get_buff_len(ctx), linear = ctx->data_end - ctx->data;
    bpf_map_update_elem(&lengths, &whole, &total, BPF_ANY);
    bpf_map_update_elem(&lengths, &head, &linear, BPF_ANY);
    return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""

PLAIN = "int plain(struct xdp_md *ctx) { return XDP_PASS; }"


def _lengths(h) -> tuple[int, int]:
    df = h["lengths"].to_frame().set_index("key")["value"]
    return int(df[0]), int(df[1])


def _set_mtu(net, mtu: int) -> None:
    """Both ends of the a-b veth: veth checks its peer's MTU when a native program attaches."""
    for host in ("a", "b"):
        with net.ipr(host) as ipr:
            # net.ipr talks to the host's namespace, never to the machine's own interfaces
            assert sorted(link.get_attr("IFLA_IFNAME") for link in ipr.get_links()) == ["eth0", "lo"]
            ipr.link("set", index=net.interface(host).ifindex, mtu=mtu)
        assert f"mtu {mtu} " in net.run(host, ["ip", "link", "show", "eth0"])


@pytest.fixture
def net(ip):
    require("xdp")
    net = ip.run_line_magic("bpf_net", "")
    yield net
    ip.run_line_magic("bpf_net", "--close")


@pytest.mark.parametrize("engine", ["bcc", "core"])
def test_frags_program_sees_a_jumbo_test_packet_whole(ip, net, engine):
    if engine == "bcc":
        h = ip.run_cell_magic("bpf", "xdp.frags --dev b -n frag_len", BCC_LENGTHS)
    else:
        h = ip.run_cell_magic("bpf", "--dev b -n frag_len", CORE_LENGTHS)
    assert h.engine == engine
    pkt = Ether() / IP(dst="192.0.2.2") / UDP(dport=9) / bytes(JUMBO - 28)
    r = h.test_run(pkt)
    total, linear = _lengths(h)
    assert r.action == "XDP_PASS" and len(r.data_out) == len(pkt) == JUMBO + 14
    assert total == JUMBO + 14, "bpf_xdp_get_buff_len counts the fragments too"
    assert linear < 4096 < total, "the head is at most a page; the rest sits in fragments"


def test_bcc_frags_attaches_natively_under_a_jumbo_mtu_and_sees_jumbo_traffic(ip, net):
    _set_mtu(net, JUMBO)
    with pytest.raises(AttachError, match="drv mode"):
        ip.run_cell_magic("bpf", "xdp --dev b -n plain --xdp-mode drv", PLAIN)
    h = ip.run_cell_magic("bpf", "xdp.frags --dev b -n frag_len --xdp-mode drv", BCC_LENGTHS)
    assert "b:eth0 (drv mode)" in h.summary()["attached"]
    sent = net.udp("a", "b", count=3, size=8000)
    assert sent["received"].sum() == 3 and (sent["bytes"] == 8000).all()
    total, linear = _lengths(h)
    assert total == 14 + 20 + 8 + 8000 and linear < total
