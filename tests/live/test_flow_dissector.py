"""flow_dissector on a lab host's namespace, both engines: flow keys of crafted packets, and the kernel using it."""
from __future__ import annotations

import random

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from ebpf_magic.errors import AttachError, UsageError

NET_FAMILY = "flow_dissector"
pytestmark = pytest.mark.live

# IPv4 without options, TCP and UDP ports; anything else is refused (BPF_DROP). Counts dissected
# packets per destination port, so the test sees which packets the kernel gave it.
BCC_DISSECT = r"""
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
BPF_HASH(seen, u16, u64);
int dissect(struct __sk_buff *skb) {
    struct bpf_flow_keys *keys = skb->flow_keys;
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    __u32 nhoff = keys->nhoff;
    /* a bound on the offset: the verifier must know data + nhoff + 20 stays inside 64 KiB */
    if (keys->n_proto != htons(ETH_P_IP) || nhoff > 64) return BPF_DROP;
    struct iphdr *ip = data + nhoff;
    if ((void *)(ip + 1) > end || ip->ihl != 5) return BPF_DROP;
    keys->addr_proto = ETH_P_IP;
    keys->ipv4_src = ip->saddr;
    keys->ipv4_dst = ip->daddr;
    keys->ip_proto = ip->protocol;
    keys->thoff = nhoff + sizeof(*ip);
    if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP) return BPF_OK;
    __be16 *ports = (void *)(ip + 1);
    if ((void *)(ports + 2) > end) return BPF_DROP;
    keys->sport = ports[0];
    keys->dport = ports[1];
    seen.increment((u16)ntohs(ports[1]));
    return BPF_OK;
}
"""

CORE_DISSECT = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1024);
         __type(key, __u16); __type(value, __u64); } seen SEC(".maps");
SEC("flow_dissector")
int dissect(struct __sk_buff *skb) {
    struct bpf_flow_keys *keys = skb->flow_keys;
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    __u32 nhoff = keys->nhoff;
    /* a bound on the offset: the verifier must know data + nhoff + 20 stays inside 64 KiB */
    if (keys->n_proto != bpf_htons(0x0800) || nhoff > 64) return BPF_DROP;
    struct iphdr *ip = data + nhoff;
    if ((void *)(ip + 1) > end || ip->ihl != 5) return BPF_DROP;
    keys->addr_proto = 0x0800;
    keys->ipv4_src = ip->saddr;
    keys->ipv4_dst = ip->daddr;
    keys->ip_proto = ip->protocol;
    keys->thoff = nhoff + sizeof(*ip);
    if (ip->protocol != 6 && ip->protocol != 17) return BPF_OK;
    __be16 *ports = (void *)(ip + 1);
    if ((void *)(ports + 2) > end) return BPF_DROP;
    keys->sport = ports[0];
    keys->dport = ports[1];
    __u16 port = bpf_ntohs(ports[1]);
    __u64 one = 1, *n = bpf_map_lookup_elem(&seen, &port);
    if (n) __sync_fetch_and_add(n, 1);
    else bpf_map_update_elem(&seen, &port, &one, BPF_NOEXIST);
    return BPF_OK;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def net(lab_net):
    return lab_net


def load(ip, engine: str, host: str = "a", name: str = "fd"):
    if engine == "bcc":
        return ip.run_cell_magic("bpf", f"flow_dissector --netns {host} -n {name}", BCC_DISSECT)
    return ip.run_cell_magic("bpf", f"--netns {host} -n {name}", CORE_DISSECT)


def seen(h, port: int) -> int:
    df = h["seen"].to_frame()
    return int(df.loc[df["key"] == port, "value"].sum())


def frames(net, src: str, dst: str, dport: int, n: int):
    a, b = net.interface(src), net.interface(dst)
    return [Ether(src=a.mac, dst=b.mac) / IP(src=a.ipv4, dst=b.ipv4) / UDP(sport=40000 + i, dport=dport) / b"x"
            for i in range(n)]


@pytest.mark.parametrize("engine", ["bcc", "core"])
def test_flow_keys_of_crafted_packets(ip, net, engine):
    h = load(ip, engine)
    assert "flow_dissector host a" in h.summary()["attached"]
    r = h.test_run(Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1234, dport=5678), repeat=100)
    assert (r.action, r.retval, r.repeat) == ("BPF_OK", 0, 100)
    assert r.flow_keys == {"nhoff": 14, "thoff": 34, "n_proto": 0x0800, "addr_proto": 0x0800, "ip_proto": 17,
                           "is_frag": False, "is_first_frag": False, "is_encap": False, "src": "192.0.2.1",
                           "dst": "192.0.2.2", "sport": 1234, "dport": 5678, "flags": 0, "flow_label": 0}
    assert "192.0.2.1:1234 -> 192.0.2.2:5678" in repr(r)
    with pytest.raises(UsageError, match="flow keys"):
        r.packet.summary()
    df = h.test_run_many([Ether() / IP(src="198.51.100.7", dst="203.0.113.9") / TCP(sport=80, dport=443),
                          Ether() / IPv6() / UDP(),
                          Ether() / IP(options=b"\x01\x01\x01\x00") / UDP(),
                          Ether() / IP(dst="192.0.2.2", proto=1) / b"\x08\x00\x00\x00"])
    assert list(df["action"]) == ["BPF_OK", "BPF_DROP", "BPF_DROP", "BPF_OK"]
    assert list(df["retval"]) == [0, 2, 2, 0]
    assert df.loc[0, ["src", "dst", "sport", "dport", "ip_proto", "thoff"]].tolist() == \
        ["198.51.100.7", "203.0.113.9", 80, 443, 6, 34]
    assert df.loc[3, ["ip_proto", "sport", "dport", "dst"]].tolist() == [1, 0, 0, "192.0.2.2"]
    # Test runs count too: the program ran 100 times on port 5678 and once on 443.
    assert seen(h, 5678) == 100 and seen(h, 443) == 1


@pytest.mark.parametrize("engine", ["bcc", "core"])
def test_the_kernel_dissects_the_namespaces_packets_with_it(ip, net, engine):
    h = load(ip, engine)
    port, n = random.randrange(20000, 30000), random.randrange(5, 25)
    # A packet socket's frames are dissected once as they are sent (to find their transport header).
    assert net.send_frames("a", frames(net, "a", "b", port, n)) == n
    assert seen(h, port) == n
    # Host b's namespace has no program of ours: its frames are not counted.
    net.send_frames("b", frames(net, "b", "a", port + 1, 7))
    assert seen(h, port + 1) == 0
    h.detach()
    net.send_frames("a", frames(net, "a", "b", port, 3))
    fresh = load(ip, engine, name="fd2")
    assert seen(fresh, port) == 0
    net.send_frames("a", frames(net, "a", "b", port, 2))
    assert seen(fresh, port) == 2


@pytest.mark.parametrize("engine", ["bcc", "core"])
def test_one_flow_dissector_per_namespace(ip, net, engine):
    load(ip, engine, host="b", name="first")
    with pytest.raises(AttachError, match="one flow dissector per namespace"):
        load(ip, engine, host="b", name="second")
    other = load(ip, engine, host="a", name="other")   # another namespace takes its own
    assert other.attached


def test_flow_dissector_refuses_the_machines_namespace(ip, net):
    with pytest.raises(AttachError, match="--real-netns"):
        ip.run_cell_magic("bpf", "flow_dissector --netns self -n fd", BCC_DISSECT)
    with pytest.raises(UsageError, match="applies to sk_lookup, flow_dissector"):
        ip.run_cell_magic("bpf", "xdp --netns b -n fd", "int f(struct xdp_md *c) { return 2; }")
