"""tc in the lab network: tcx links and legacy clsact filters, both engines, exact counts."""
from __future__ import annotations

import json
import subprocess

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether

from ebpf_magic.errors import UsageError
from tests.conftest import require

pytestmark = pytest.mark.live

BCC_UDP_SHOT = r"""
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
BPF_ARRAY(seen, u64, 2);     /* 0: ICMP, 1: UDP, counted by the IPv4 protocol byte */
int udp_shot(struct __sk_buff *skb) {
    u8 proto;
    u16 eth;
    if (bpf_skb_load_bytes(skb, 12, &eth, 2) || eth != htons(0x0800)) return TC_ACT_OK;
    if (bpf_skb_load_bytes(skb, 23, &proto, 1)) return TC_ACT_OK;
    u32 key = proto == 17;
    if (proto != 1 && proto != 17) return TC_ACT_OK;
    seen.increment(key);
    return proto == 17 ? TC_ACT_SHOT : TC_ACT_OK;
}
"""

CORE_EGRESS = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
u64 replies = 0;
SEC("tc")
int count_replies(struct __sk_buff *skb) {
    u8 proto, type;
    if (skb->protocol != bpf_htons(0x0800)) return 0;
    if (bpf_skb_load_bytes(skb, 23, &proto, 1) || proto != 1) return 0;
    if (bpf_skb_load_bytes(skb, 34, &type, 1) || type != 0) return 0;
    __sync_fetch_and_add(&replies, 1);
    return 0; /* TC_ACT_OK */
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def net(ip):
    require("tc")
    return ip.run_line_magic("bpf_net", "")


def _filters(net, host: str, parent: str) -> list:
    def query():
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            return [f.get_attr("TCA_KIND") for f in ipr.get_filters(2, parent=parent) if f["handle"]]
    return net.run_in(host, query)


def _links_of(prog_id: int) -> list:
    out = subprocess.run(["bpftool", "-j", "link", "list"], capture_output=True, text=True, check=True).stdout
    return [link for link in json.loads(out or "[]") if link.get("prog_id") == prog_id]


@pytest.mark.parametrize("how", ["", "--clsact"])
def test_bcc_tc_ingress_shoots_udp(ip, net, how):
    h = ip.run_cell_magic("bpf", f"tc --dev b --direction ingress -n udp_shot {how}", BCC_UDP_SHOT)
    kind = "clsact" if how else "tcx"
    assert h.summary()["attached"].startswith(f"{kind} b:eth0 ingress")
    assert net.udp("a", "b", count=6, timeout=0.5)["received"].sum() == 0
    assert net.ping("a", "b", count=5)["replied"].sum() == 5
    df = h["seen"].to_frame()
    assert df["value"].tolist() == [5, 6]
    prog_id = h.bpf.funcs[b"udp_shot"].fd and _prog_id(h.bpf.funcs[b"udp_shot"].fd)
    if how:
        assert _filters(net, "b", "ffff:fff2") == ["bpf"] and not _links_of(prog_id)
    else:
        assert [link["type"] for link in _links_of(prog_id)] == ["tcx"]
    assert h.test_run(Ether() / IP() / UDP(), repeat=100).action == "TC_ACT_SHOT"
    assert h.test_run(Ether() / IP() / ICMP()).action == "TC_ACT_OK"
    h.detach()
    assert net.udp("a", "b", count=3)["received"].sum() == 3
    if how:  # the netlink filter and the clsact qdisc the lab added are gone
        assert _filters(net, "b", "ffff:fff2") == []


def test_core_tc_egress_counts_replies(ip, net):
    h = ip.run_cell_magic("bpf", "--dev b --direction egress -n replies", CORE_EGRESS)
    assert "tcx b:eth0 egress" in h.summary()["attached"]
    assert net.ping("a", "b", count=12)["replied"].sum() == 12
    assert h.globals["replies"] == 12


def test_direction_is_required_and_checked(ip, net):
    with pytest.raises(UsageError, match="ingress or egress"):
        ip.run_cell_magic("bpf", "tc --dev b -n nodir", "int nodir(struct __sk_buff *skb) { return 0; }")
    with pytest.raises(UsageError, match="invalid choice"):
        ip.run_cell_magic("bpf", "tc --dev b --direction sideways -n bad",
                          "int bad(struct __sk_buff *skb) { return 0; }")


def _prog_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("prog_id:"))
