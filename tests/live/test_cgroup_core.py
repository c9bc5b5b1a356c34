"""The same cgroup and sockmap families from whole libbpf programs (the CO-RE engine)."""
from __future__ import annotations

import pytest

from tests.conftest import require
from tests.live.cgroup_helpers import cg, run_py, servers
from tests.live.test_cgroup import UDP_EXCHANGE, connect_child
from tests.live.test_sockmap import finish, keys, start_pairs

pytestmark = pytest.mark.live
FIXTURES = (cg, servers,)   # imported fixtures: pytest finds them by name

HEAD = """\
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
"""
LICENSE = '\nchar LICENSE[] SEC("license") = "GPL";\n'


def test_core_connect4_denies_and_rewrites(ip, cg, servers):
    a, b, denied = servers(b"A"), servers(b"B"), servers(b"D")
    cell = HEAD + """
const volatile u16 denied_port, from_port, to_port;
u64 calls;
SEC("cgroup/connect4")
int policy(struct bpf_sock_addr *ctx) {
    __sync_fetch_and_add(&calls, 1);
    if (ctx->user_port == bpf_htons(denied_port)) return 0;
    if (ctx->user_port == bpf_htons(from_port)) ctx->user_port = bpf_htons(to_port);
    return 1;
}""" + LICENSE
    ip.user_ns["cg"] = cg
    h = ip.run_cell_magic("bpf", f"--cgroup cg -n pol --set denied_port={denied.port} --set from_port={a.port} "
                                 f"--set to_port={b.port}", cell)
    assert h.engine == "core"
    assert run_py(cg, connect_child(4, [a.port, denied.port])) == ["B", "EPERM"]
    assert h.globals["calls"] == 2
    assert (a.accepted, b.accepted, denied.accepted) == (0, 1, 0)


def test_core_cgroup_skb_one_object_counts_both_directions(ip, cg):
    cell = HEAD + """
u64 packets[2], bytes[2];
static int count(struct __sk_buff *skb, int dir) {
    u8 proto = 0;
    if (skb->protocol != bpf_htons(0x0800)) return 1;
    bpf_skb_load_bytes(skb, 9, &proto, 1);
    if (proto != 17) return 1;
    __sync_fetch_and_add(&packets[dir], 1);
    __sync_fetch_and_add(&bytes[dir], skb->len);
    return 1;
}
SEC("cgroup_skb/ingress") int ingress(struct __sk_buff *skb) { return count(skb, 0); }
SEC("cgroup_skb/egress") int egress(struct __sk_buff *skb) { return count(skb, 1); }
""" + LICENSE
    ip.user_ns["cg"] = cg
    h = ip.run_cell_magic("bpf", "--cgroup cg -n skb", cell)
    assert len([a for a in h.attachments if a.attached]) == 2
    assert run_py(cg, UDP_EXCHANGE) == {"ok": True}
    assert list(h.globals["packets"]) == [10, 10]
    assert list(h.globals["bytes"]) == [1280, 1280]


def test_core_sockops_and_sk_msg_in_one_object_redirect(ip, cg):
    require("sk_msg")
    cell = HEAD + """
struct pair_key { u32 local_port; u32 remote_port; };
struct { __uint(type, BPF_MAP_TYPE_SOCKHASH); __uint(max_entries, 64);
         __type(key, struct pair_key); __type(value, u32); } socks SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 3);
         __type(key, u32); __type(value, u32); } cfg SEC(".maps");   /* from port, target key */
u64 established, redirected;

SEC("sockops")
int on_ops(struct bpf_sock_ops *skops) {
    if ((skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB || skops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
        && skops->family == 2) {
        struct pair_key k = {skops->local_port, bpf_ntohl(skops->remote_port)};
        __sync_fetch_and_add(&established, 1);
        bpf_sock_hash_update(skops, &socks, &k, BPF_NOEXIST);
    }
    return 1;
}

SEC("sk_msg")
int fastpath(struct sk_msg_md *msg) {
    u32 i0 = 0, i1 = 1, i2 = 2, *from = bpf_map_lookup_elem(&cfg, &i0);
    u32 *lp = bpf_map_lookup_elem(&cfg, &i1), *rp = bpf_map_lookup_elem(&cfg, &i2);
    if (!from || !lp || !rp || bpf_ntohl(msg->remote_port) != *from) return SK_PASS;
    struct pair_key k = {*lp, *rp};
    __sync_fetch_and_add(&redirected, msg->size);
    return bpf_msg_redirect_hash(msg, &socks, &k, BPF_F_INGRESS);
}
""" + LICENSE
    ip.user_ns["cg"] = cg
    h = ip.run_cell_magic("bpf", "--cgroup cg --map socks -n fast", cell)
    proc, ports = start_pairs(cg)
    assert keys(h, "socks") == 4
    for i, port in enumerate((ports["l1"], ports["l2"], ports["c2"])):
        _put_u32(h, "cfg", i, port)
    assert finish(proc) == {"s2": "hello"}
    assert h.globals["established"] == 4 and h.globals["redirected"] == 5


def _put_u32(h, name: str, index: int, value: int) -> None:
    import ctypes as ct

    from ebpf_magic import libbpf

    key, val = ct.c_uint32(index), ct.c_uint32(value)
    assert libbpf.lib().bpf_map_update_elem(h[name].info.fd, ct.byref(key), ct.byref(val), 0) == 0


def test_core_sock_create_and_dev_policies(ip, cg):
    cell = HEAD + """
u64 denied_sockets, denied_devices;
SEC("cgroup/sock_create")
int no_udp(struct bpf_sock *sk) {
    if (sk->type == 2) { __sync_fetch_and_add(&denied_sockets, 1); return 0; }
    return 1;
}
SEC("cgroup/dev")
int no_zero(struct bpf_cgroup_dev_ctx *ctx) {
    if (ctx->major == 1 && ctx->minor == 5) { __sync_fetch_and_add(&denied_devices, 1); return 0; }
    return 1;
}""" + LICENSE
    ip.user_ns["cg"] = cg
    h = ip.run_cell_magic("bpf", "--cgroup cg -n policy", cell)
    out = run_py(cg, """
        import errno, json, os, socket
        res = []
        for make in (lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM), lambda: os.open("/dev/zero", 0)):
            try:
                make(); res.append("ok")
            except OSError as e:
                res.append(errno.errorcode[e.errno])
        print(json.dumps(res))""")
    assert out == ["EPERM", "EPERM"]
    assert (h.globals["denied_sockets"], h.globals["denied_devices"]) == (1, 1)


def test_core_sk_msg_uses_the_sockhash_of_a_bcc_handle(ip, cg):
    """--map est:socks across engines: libbpf reuses the BCC handle's map for the cell's own socks."""
    from tests.live.test_sockmap import SOCKOPS

    require("sk_msg")
    ip.user_ns["cg"] = cg
    ip.run_cell_magic("bpf", "sockops --cgroup cg -n est -q", SOCKOPS)
    est = ip.user_ns["est"]
    cell = HEAD + """
struct pair_key { u32 local_port; u32 remote_port; };
struct { __uint(type, BPF_MAP_TYPE_SOCKHASH); __uint(max_entries, 64);
         __type(key, struct pair_key); __type(value, u32); } socks SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 3);
         __type(key, u32); __type(value, u32); } cfg SEC(".maps");
u64 redirected;
SEC("sk_msg")
int fastpath(struct sk_msg_md *msg) {
    u32 i0 = 0, i1 = 1, i2 = 2, *from = bpf_map_lookup_elem(&cfg, &i0);
    u32 *lp = bpf_map_lookup_elem(&cfg, &i1), *rp = bpf_map_lookup_elem(&cfg, &i2);
    if (!from || !lp || !rp || bpf_ntohl(msg->remote_port) != *from) return SK_PASS;
    struct pair_key k = {*lp, *rp};
    __sync_fetch_and_add(&redirected, msg->size);
    return bpf_msg_redirect_hash(msg, &socks, &k, BPF_F_INGRESS);
}
""" + LICENSE
    h = ip.run_cell_magic("bpf", "--map est:socks -n fast", cell)
    proc, ports = start_pairs(cg)
    assert keys(est, "socks") == 4 and keys(h, "socks") == 4   # one map, seen from both handles
    for i, port in enumerate((ports["l1"], ports["l2"], ports["c2"])):
        _put_u32(h, "cfg", i, port)
    assert finish(proc) == {"s2": "hello"}
    assert h.globals["redirected"] == 5
