"""Socket filters on a packet socket inside a lab host: captures as DataFrames and pcap files."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from ebpf_magic.errors import UsageError
from tests.conftest import require

pytestmark = pytest.mark.live

BCC_KEEP_ICMP = r"""
#include <uapi/linux/bpf.h>
BPF_ARRAY(seen, u64, 1);
int keep_icmp(struct __sk_buff *skb) {
    u8 proto;
    /* relative to the IP header: the same under test_run and on the packet socket */
    if (skb->protocol != htons(0x0800)) return 0;
    if (bpf_skb_load_bytes_relative(skb, 9, &proto, 1, BPF_HDR_START_NET) || proto != 1) return 0;
    seen.increment(0);
    return -1;   /* keep the whole packet */
}
"""

CORE_HEADERS_ONLY = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
SEC("socket")
int udp_heads(struct __sk_buff *skb) {
    u8 proto;
    if (skb->protocol != __builtin_bswap16(0x0800)) return 0;
    if (bpf_skb_load_bytes_relative(skb, 9, &proto, 1, BPF_HDR_START_NET) || proto != 17) return 0;
    return 42;   /* Ethernet + IPv4 + UDP headers only */
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def net(ip):
    require("socket")
    return ip.run_line_magic("bpf_net", "")


def test_bcc_socket_filter_keeps_icmp(ip, net, tmp_path):
    h = ip.run_cell_magic("bpf", "socket --dev b -n keep_icmp", BCC_KEEP_ICMP)
    assert "b:eth0 (packet socket)" in h.summary()["attached"]
    assert net.ping("a", "b", count=10)["replied"].sum() == 10
    assert net.udp("a", "b", count=5)["received"].sum() == 5
    df = h.packets(0.2)
    assert len(df) == 20 and set(df["protocol"]) == {"icmp"}
    assert (df["direction"] == "in").sum() == 10 and (df["direction"] == "out").sum() == 10
    assert set(df.loc[df["direction"] == "in", "src"]) == {"192.0.2.1"}
    assert (df["length"] == 98).all()      # 14 + 20 + 8 + 56
    assert h["seen"].to_frame()["value"].tolist() == [20]
    path = h.to_pcap(tmp_path / "icmp.pcap")
    assert len(rdpcap(path)) == 20
    df.pcap.write(tmp_path / "frame.pcap")
    assert [bytes(p) for p in rdpcap(str(tmp_path / "frame.pcap"))] == list(df["data"])
    r = h.test_run(Ether() / IP(dst="192.0.2.2") / ICMP())
    assert r.action == "keep 4294967295 bytes" and ICMP in r.packet and r.packet[IP].dst == "192.0.2.2"
    assert h.test_run(Ether() / IP() / UDP()).action == "drop"


def test_core_socket_filter_truncates(ip, net):
    h = ip.run_cell_magic("bpf", "--dev a -n heads", CORE_HEADERS_ONLY)
    assert net.udp("a", "b", count=8, size=500)["received"].sum() == 8
    df = h.packets(0.2)
    assert len(df) == 8 and (df["length"] == 42).all()
    assert set(df["dport"]) == {9000} and set(df["direction"]) == {"out"}
    assert h.test_run(Ether() / IP() / UDP() / bytes(100)).action == "keep 42 bytes"


def test_packets_only_for_socket_filters(ip, net):
    h = ip.run_cell_magic("bpf", "xdp --dev b -n plain", "int plain(struct xdp_md *ctx) { return XDP_PASS; }")
    with pytest.raises(UsageError, match="only attached socket filters capture"):
        h.packets(0.1)
