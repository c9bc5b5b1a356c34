"""sk_reuseport on a lab-made SO_REUSEPORT group, both engines: the program's choice of listener is obeyed."""
from __future__ import annotations

import pytest

from ebpf_magic.errors import AttachError, UsageError

NET_FAMILY = "sk_reuseport"
pytestmark = pytest.mark.live

# Picks the listener at index `pick` of the group's sockarray and counts its choices.
BCC_PICK = r"""
BPF_TABLE("sockmap", u32, u64, group, 8);   /* BCC 0.26 has no reuseport_sockarray; a sockmap works */
/* BCC has no method that passes a map to this helper; its loader numbers the cell's maps -1, -2, ... */
#define GROUP ((void *)bpf_pseudo_fd(1, -1))
BPF_ARRAY(pick, u32, 1);
BPF_ARRAY(chosen, u64, 8);
int choose(struct sk_reuseport_md *md) {
    u32 zero = 0, *i = pick.lookup(&zero);
    if (!i) return SK_DROP;
    u32 k = *i;
    if (bpf_sk_select_reuseport(md, GROUP, &k, 0)) return SK_DROP;
    chosen.increment(k);
    return SK_PASS;
}
"""

CORE_PICK = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
const volatile __u32 pick = 0;
struct { __uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY); __uint(max_entries, 8);
         __type(key, __u32); __type(value, __u64); } group SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 8);
         __type(key, __u32); __type(value, __u64); } chosen SEC(".maps");
SEC("sk_reuseport")
int choose(struct sk_reuseport_md *md) {
    __u32 k = pick;
    if (bpf_sk_select_reuseport(md, &group, &k, 0)) return SK_DROP;
    __u64 *n = bpf_map_lookup_elem(&chosen, &k);
    if (n) __sync_fetch_and_add(n, 1);
    return SK_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def net(lab_net):
    return lab_net


def chosen(h) -> list[int]:
    df = h["chosen"].to_frame().sort_values("key")
    return [int(v) for v in df["value"]]


def load(ip, engine: str, pick: int, extra: str = ""):
    if engine == "bcc":
        h = ip.run_cell_magic("bpf", f"sk_reuseport --netns b --sockets 4 -n choose {extra}", BCC_PICK)
        h["pick"][0] = pick
        return h
    return ip.run_cell_magic("bpf", f"--netns b --sockets 4 --set pick={pick} -n choose {extra}", CORE_PICK)


@pytest.mark.parametrize("engine", ["bcc", "core"])
def test_sk_reuseport_choice_is_obeyed(ip, net, engine):
    h = load(ip, engine, pick=2)
    g = h.group
    assert len(g.sockets) == 4 and f"port {g.port}" in h.summary()["attached"]
    df = net.connect("a", "b", [g.port] * 12, g.sockets)
    assert list(df["result"]) == ["accepted"] * 12
    assert list(df["listener"]) == [2] * 12          # without the program the kernel spreads them by hash
    assert chosen(h) == [0, 0, 12, 0, 0, 0, 0, 0]
    if engine == "bcc":
        h["pick"][0] = 3
        assert list(net.connect("a", "b", [g.port] * 5, g.sockets)["listener"]) == [3] * 5
        h["pick"][0] = 7             # an empty slot: SK_DROP, the lookup finds no socket, the SYN gets a reset
        assert net.connect("a", "b", g.port, g.sockets)["result"].item() == "refused"
        assert chosen(h) == [0, 0, 12, 5, 0, 0, 0, 0]
    h.detach()
    assert all(s.fileno() == -1 for s in g.sockets)     # the group goes with the handle
    assert net.connect("a", "b", g.port, [])["result"].item() == "refused"


@pytest.mark.parametrize("engine", ["bcc", "core"])
def test_sk_reuseport_on_a_given_port(ip, net, engine):
    h = load(ip, engine, pick=1, extra="--port 7123")
    assert h.group.port == 7123
    assert net.connect("a", "b", 7123, h.group.sockets)["listener"].item() == 1


@pytest.mark.parametrize("line, exc, match", [
    ("sk_reuseport --netns b --sockets 0 -n choose", UsageError, "from 1 to 64"),
    ("sk_reuseport --netns b --sockets 9 -n choose", AttachError, "do not fit group"),
    ("sk_reuseport --netns b --port 70000 -n choose", UsageError, "from 1 to 65535"),
    ("sk_reuseport --netns b --map nosuch -n choose", AttachError, "no socket map of that name"),
    ("sk_reuseport -n choose", AttachError, "names none"),
    ("sk_reuseport --netns self -n choose", AttachError, "--real-netns"),
])
def test_sk_reuseport_misuse(ip, net, line, exc, match):
    with pytest.raises(exc, match=match):
        ip.run_cell_magic("bpf", line, BCC_PICK)


def test_sockets_option_is_only_for_sk_reuseport(ip, net):
    with pytest.raises(UsageError, match="applies to sk_reuseport"):
        ip.run_cell_magic("bpf", "xdp --dev b --sockets 3 -n x", "int f(struct xdp_md *c) { return 2; }")
