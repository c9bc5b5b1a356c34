"""XDP in the lab network, both engines: real traffic gives exact counts; test runs on crafted packets."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether

from ebpf_magic.errors import AttachError
from tests.conftest import require

pytestmark = pytest.mark.live

BCC_ICMP_DROP = r"""
#include <uapi/linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
BPF_PERCPU_ARRAY(per_proto, u64, 256);
int icmp_drop(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end || eth->h_proto != htons(ETH_P_IP)) return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end) return XDP_PASS;
    u32 key = ip->protocol;
    u64 *v = per_proto.lookup(&key);
    if (v) *v += 1;
    return ip->protocol == IPPROTO_ICMP ? XDP_DROP : XDP_PASS;
}
"""

CORE_UDP_DROP = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 256);
         __type(key, u32); __type(value, u64); } per_proto SEC(".maps");
SEC("xdp")
int udp_drop(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(0x0800)) return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end) return XDP_PASS;
    u32 key = ip->protocol;
    u64 *v = bpf_map_lookup_elem(&per_proto, &key);
    if (v) __sync_fetch_and_add(v, 1);
    return ip->protocol == 17 ? XDP_DROP : XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


def _count(df, proto: int) -> int:
    return int(df.loc[df["key"] == proto, "value"].sum())


@pytest.fixture
def net(ip):
    require("xdp")
    return ip.run_line_magic("bpf_net", "")


@pytest.mark.parametrize("mode", ["skb", "drv"])
def test_bcc_xdp_drops_icmp_and_counts_per_protocol(ip, net, mode):
    h = ip.run_cell_magic("bpf", f"xdp --dev b -n icmp_drop --xdp-mode {mode}", BCC_ICMP_DROP)
    assert f"b:eth0 ({mode} mode)" in h.summary()["attached"]
    pings = net.ping("a", "b", count=20, timeout=0.5)
    assert len(pings) == 20 and pings["replied"].sum() == 0
    udp = net.udp("a", "b", count=7)
    assert udp["received"].sum() == 7
    df = h["per_proto"].to_frame()
    assert _count(df, 1) == 20 and _count(df, 17) == 7
    r = h.test_run(Ether() / IP(dst="192.0.2.2") / ICMP(), repeat=1000)
    assert r.action == "XDP_DROP" and r.retval == 1 and r.repeat == 1000 and r.ns_per_run >= 0
    assert ICMP in r.packet
    h.detach()
    assert net.ping("a", "b", count=3)["replied"].sum() == 3


def test_core_xdp_drops_udp(ip, net):
    h = ip.run_cell_magic("bpf", "--dev b -n udp_drop", CORE_UDP_DROP)
    assert h.engine == "core" and "b:eth0" in h.summary()["attached"]
    assert net.udp("a", "b", count=9, timeout=0.5)["received"].sum() == 0
    assert net.ping("a", "b", count=4)["replied"].sum() == 4
    df = h["per_proto"].to_frame()
    assert _count(df, 17) == 9 and _count(df, 1) == 4
    many = h.test_run_many([Ether() / IP() / UDP(dport=53), Ether() / IP() / ICMP(), bytes(Ether() / IP() / UDP())])
    assert list(many["action"]) == ["XDP_DROP", "XDP_PASS", "XDP_DROP"]
    assert not many["changed"].any()


def test_xdp_needs_a_lab_device(ip, net):
    with pytest.raises(AttachError, match="needs an interface"):
        ip.run_cell_magic("bpf", "xdp -n nodev", "int nodev(struct xdp_md *ctx) { return XDP_PASS; }")
    with pytest.raises(AttachError, match="outside the lab network") as err:
        ip.run_cell_magic("bpf", "xdp --dev lo -n real", "int real(struct xdp_md *ctx) { return XDP_PASS; }")
    assert "--real-dev" in err.value.hint
    with pytest.raises(AttachError, match="no lab host 'zz'"):
        ip.run_cell_magic("bpf", "xdp --dev zz -n nohost", "int nohost(struct xdp_md *ctx) { return XDP_PASS; }")
