"""sk_lookup on a lab host's namespace, both engines: connections to a port range reach the socket it chose."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from ebpf_magic.errors import AttachError, MapError, UsageError
from tests.conftest import held_link_ids, require

NET_FAMILY = "sk_lookup"
pytestmark = pytest.mark.live

LO, HI = 7000, 7010   # the range the program steers; the listener is bound elsewhere

BCC_STEER = r"""
#include <linux/in.h>
#ifndef PROTO
#define PROTO IPPROTO_TCP
#endif
BPF_TABLE("sockmap", u32, u64, socks, 2);
BPF_ARRAY(steered, u64, 1);
int steer(struct bpf_sk_lookup *ctx) {
    if (ctx->protocol != PROTO || ctx->local_port < LO || ctx->local_port >= HI) return SK_PASS;
    u32 key = 0;
    struct bpf_sock *sk = (struct bpf_sock *)socks.lookup(&key);
    if (!sk) return SK_PASS;
    long err = bpf_sk_assign(ctx, sk, 0);
    bpf_sk_release(sk);
    if (!err) steered.increment(key);
    return SK_PASS;
}
"""

CORE_STEER = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
const volatile __u32 lo = 0, hi = 0;
struct { __uint(type, BPF_MAP_TYPE_SOCKMAP); __uint(max_entries, 2);
         __type(key, __u32); __type(value, __u64); } socks SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u64); } steered SEC(".maps");
SEC("sk_lookup")
int steer(struct bpf_sk_lookup *ctx) {
    if (ctx->protocol != 6 || ctx->local_port < lo || ctx->local_port >= hi) return SK_PASS;
    __u32 key = 0;
    struct bpf_sock *sk = bpf_map_lookup_elem(&socks, &key);
    if (!sk) return SK_PASS;
    long err = bpf_sk_assign(ctx, sk, 0);
    bpf_sk_release(sk);
    __u64 *n = bpf_map_lookup_elem(&steered, &key);
    if (!err && n) __sync_fetch_and_add(n, 1);
    return SK_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def net(lab_net):
    return lab_net


def load(ip, engine: str, extra: str = ""):
    if engine == "bcc":
        return ip.run_cell_magic("bpf", f"sk_lookup --netns b -n steer --cflags '-DLO={LO} -DHI={HI}' {extra}",
                                 BCC_STEER)
    return ip.run_cell_magic("bpf", f"--netns b -n steer --set lo={LO} --set hi={HI} {extra}", CORE_STEER)


def steered(h) -> int:
    df = h["steered"].to_frame()
    return int(df.loc[df["key"] == 0, "value"].sum())


@pytest.mark.parametrize("engine", ["bcc", "core"])
def test_sk_lookup_steers_a_port_range_to_the_chosen_socket(ip, net, engine):
    h = load(ip, engine)
    assert "sk_lookup host b" in h.summary()["attached"]
    srv = net.listen("b", 0)
    other = net.listen("b", 0)   # a listener the program never picks
    port = srv.getsockname()[1]
    with srv, other:
        # Nothing in the map yet: the program passes, and nothing listens on the range.
        before = net.connect("a", "b", [LO, LO + 3], [srv, other])
        assert list(before["result"]) == ["refused", "refused"]
        h.put_socket("socks", 0, srv)
        df = net.connect("a", "b", list(range(LO, HI)) + [HI], [srv, other])
        inside = df[df["port"] < HI]
        assert list(inside["result"]) == ["accepted"] * (HI - LO)
        assert list(inside["listener"]) == [0] * (HI - LO)
        assert set(inside["listener_port"]) == {port}
        assert list(inside["local_port"]) == list(range(LO, HI))   # the accepted socket keeps the dialled port
        assert df.loc[df["port"] == HI, "result"].item() == "refused"
        # The listener's own port is not in the range: the ordinary lookup finds it.
        own = net.connect("a", "b", port, [srv, other])
        assert own["result"].item() == "accepted" and own["local_port"].item() == port
        assert steered(h) == HI - LO
        # Another chosen socket: the next connections go there.
        h.put_socket("socks", 0, other)
        again = net.connect("a", "b", LO + 5, [srv, other])
        assert again["listener"].item() == 1 and again["local_port"].item() == LO + 5
        assert steered(h) == HI - LO + 1
        # Out of the map: the program finds nothing and passes.
        h.remove_socket("socks", 0)
        assert net.connect("a", "b", LO + 1, [srv, other])["result"].item() == "refused"
        h.put_socket("socks", 0, srv)
        h.detach()
        assert net.connect("a", "b", LO + 2, [srv, other])["result"].item() == "refused"


def test_sk_lookup_steers_udp_datagrams_to_a_bound_socket(ip, net):
    h = ip.run_cell_magic("bpf", f"sk_lookup --netns b -n steer --cflags '-DLO={LO} -DHI={HI} -DPROTO=IPPROTO_UDP'",
                          BCC_STEER)
    with net.listen("b", 0, udp=True) as srv, net.listen("b", 0, udp=True) as other:
        h.put_socket("socks", 0, srv)
        df = net.connect("a", "b", [LO, LO + 4, HI - 1], [srv, other], udp=True)
        assert list(df["result"]) == ["received"] * 3 and list(df["listener"]) == [0, 0, 0]
        assert set(df["listener_port"]) == {srv.getsockname()[1]}
        assert steered(h) == 3
        tcp = net.connect("a", "b", LO, [srv, other])      # TCP is not the program's business here
        assert tcp["result"].item() == "refused"


@pytest.mark.parametrize("engine", ["bcc", "core"])
def test_sk_lookup_is_only_in_the_namespace_it_is_attached_to(ip, net, engine):
    h = load(ip, engine)
    with net.listen("a", 0) as in_a, net.listen("b", 0) as in_b:
        h.put_socket("socks", 0, in_b)
        # Host a has no program: a connection from b to a's range is refused there.
        assert net.connect("b", "a", LO, [in_a, in_b])["result"].item() == "refused"
        assert steered(h) == 0
        assert net.connect("a", "b", LO, [in_a, in_b])["listener"].item() == 1
        assert steered(h) == 1


@pytest.mark.parametrize("engine", ["bcc", "core"])
def test_netns_link_ends_with_the_handle_and_with_the_network(ip, net, engine):
    links = held_link_ids()
    h = load(ip, engine)
    assert len(held_link_ids() - links) == 1
    ip.run_line_magic("bpf_net", "--close")      # closing the network detaches what hangs on it first
    assert not h.attached
    assert held_link_ids() - links == set()


def test_put_socket_refuses_what_no_sockmap_takes(ip, net):
    h = load(ip, "bcc")
    with pytest.raises(MapError, match="not a sockmap"):
        h.put_socket("steered", 0, 3)
    with pytest.raises(UsageError, match="socket"):
        h.put_socket("socks", 0, "srv")
    with pytest.raises(MapError, match="below max_entries"):
        with net.listen("b", 0) as s:
            h.put_socket("socks", 5, s)
    unbound = net.run_in("b", socket.socket, socket.AF_INET, socket.SOCK_STREAM)
    with unbound, pytest.raises(MapError, match="listen or be connected"):
        h.put_socket("socks", 1, unbound)


@pytest.mark.parametrize("line, match", [
    ("sk_lookup -n steer", "names none"),
    ("sk_lookup --netns c -n steer", "no lab host 'c'"),
    ("sk_lookup --netns self -n steer", "add --real-netns"),
    ("sk_lookup --netns /proc/self/ns/net -n steer", "add --real-netns"),
    ("sk_lookup --netns /nonexistent --real-netns -n steer", "cannot open namespace"),
    ("sk_lookup --netns /proc/self/ns/mnt --real-netns -n steer", "not a network namespace"),
])
def test_netns_misuse_says_what_to_write(ip, net, line, match):
    with pytest.raises(AttachError, match=match):
        ip.run_cell_magic("bpf", f"{line} --cflags '-DLO={LO} -DHI={HI}'", BCC_STEER)
    assert "steer" not in ip.user_ns or not ip.user_ns["steer"].attached


KILLED = r"""
import json, sys
from ebpf_magic.attach import Options
from ebpf_magic.loader import build
from ebpf_magic.netlab import lab_network

net = lab_network()
hs = [build("int kl(struct bpf_sk_lookup *ctx) { return SK_PASS; }", "sk_lookup", name="kl",
            options=Options(netns="b")),
      build("int kf(struct __sk_buff *skb) { return BPF_OK; }", "flow_dissector", name="kf",
            options=Options(netns="a")),
      build("int kr(struct sk_reuseport_md *md) { return SK_PASS; }", "sk_reuseport", name="kr",
            options=Options(netns="b", sockets=2))]
def ids(fd, field):
    with open(f"/proc/self/fdinfo/{fd}") as f:
        return [int(ln.split()[1]) for ln in f if ln.startswith(field)]
print(json.dumps({"links": [i for h in hs[:2] for i in ids(h.attachments[0].fd, "link_id:")],
                  "progs": [i for h in hs for i in ids(h.bpf.funcs[h.function.encode()].fd, "prog_id:")]}),
      flush=True)
sys.stdin.read()
"""


def _ids(kind: str) -> set[int]:
    out = subprocess.run(["bpftool", "-j", kind, "list"], capture_output=True, text=True, check=True).stdout
    return {x["id"] for x in json.loads(out or "[]")}


def test_kill_9_detaches_every_namespace_attachment(live):
    require("sk_lookup")
    require("flow_dissector")
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        state = json.loads(child.stdout.readline())
        assert len(state["links"]) == 2 and len(state["progs"]) == 3
        assert set(state["links"]) <= _ids("link") and set(state["progs"]) <= _ids("prog")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    deadline = time.monotonic() + 60      # the kernel frees them asynchronously: wait for it, bounded
    while time.monotonic() < deadline:
        left = (set(state["links"]) & _ids("link")) | (set(state["progs"]) & _ids("prog"))
        if not left:
            break
        time.sleep(0.1)
    assert not left, f"left after kill -9: {left}"
