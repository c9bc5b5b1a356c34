"""The lab network itself: %bpf_net, traffic helpers, closing, and what a kill -9 leaves (nothing)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ebpf_magic.errors import UsageError
from tests.conftest import require

pytestmark = pytest.mark.live


def _root_links() -> set[str]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


def _bpftool(*args) -> list:
    out = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def _netns_inodes() -> set[int]:
    """Every network namespace a task is in or an fd holds (lsns misses the fd-held ones)."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        paths = [f"/proc/{pid}/ns/net"]
        try:
            paths += [f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        for path in paths:
            try:
                target = os.readlink(path)
            except OSError:
                continue
            if target.startswith("net:["):
                found.add(int(target[5:-1]))
    return found


def test_bpf_net_table_traffic_and_close(ip):
    require("xdp")
    before = _root_links()
    net = ip.run_line_magic("bpf_net", "")
    assert ip.run_line_magic("bpf_net", "") is net     # one per session
    df = net.frame()
    assert list(df.columns[:7]) == ["host", "namespace", "interface", "ifindex", "MAC", "IPv4", "IPv6"]
    assert list(df["host"]) == ["a", "b"] and list(df["IPv4"]) == ["192.0.2.1/28", "192.0.2.2/28"]
    assert all(v.startswith("2001:db8:") for v in df["IPv6"])
    assert _root_links() == before                      # nothing in the machine's own namespace
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.strip() == ""
    v6 = net.ping("b", "a", count=4, ipv6=True)
    assert v6["replied"].tolist() == [True] * 4 and v6.attrs["address"] == "2001:db8::1"
    udp = net.udp("a", "b", count=50, size=1000)
    assert udp["received"].all() and set(udp["bytes"]) == {1000}
    tcp = net.tcp("a", "b", nbytes=3 << 20)
    assert tcp.attrs["received"] == tcp.attrs["sent"] == 3 << 20 and tcp["bytes"].sum() == 3 << 20
    out = net.run("b", "cat /proc/net/dev")
    assert "eth0:" in out and "veth" not in out
    # offloads off: 3 MiB of TCP crossed as MTU-sized packets, not as 64 KiB super-packets
    rx = int(next(ln for ln in out.splitlines() if "eth0:" in ln).split(":")[1].split()[1])
    assert rx >= (3 << 20) // 1500
    with pytest.raises(UsageError, match="ran over"):
        net.run("b", "sleep 60 & sleep 60", timeout=0.3)
    assert "sleep" not in net.run("b", "ps -e -o netns=,comm= | grep $(stat -L -c %i /proc/self/ns/net) || true")
    h = ip.run_cell_magic("bpf", "xdp --dev b -n on_lab", "int on_lab(struct xdp_md *ctx) { return XDP_PASS; }")
    assert h.uses(net)
    ip.run_line_magic("bpf_net", "--close")
    assert not h.attached and net.closed and "on_lab" not in ip.run_line_magic("bpf_list", "")["name"].tolist()
    with pytest.raises(UsageError, match="closed"):
        net.ping("a", "b")
    three = ip.run_line_magic("bpf_net", "--hosts a b c")
    assert three is not net and three.ping("b", "c", count=2)["replied"].all()
    assert three.address("b", toward="c") == "192.0.2.17"
    with pytest.raises(UsageError, match="share no link"):
        three.ping("a", "c", count=1)


COUNT_UDP = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
u64 udp = 0;
SEC("xdp")
int count_udp(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct iphdr *ip = data + sizeof(struct ethhdr);
    if ((void *)(ip + 1) > end || ip->protocol != 17) return XDP_PASS;
    __sync_fetch_and_add(&udp, 1);
    return XDP_DROP;
}
char LICENSE[] SEC("license") = "GPL";
"""


def _drops(net, host: str) -> tuple[int, int]:
    line = next(ln for ln in net.run(host, "cat /proc/net/dev").splitlines() if "eth0:" in ln)
    f = line.split(":")[1].split()
    return int(f[3]), int(f[11])    # rx dropped, tx dropped


def test_flood_in_the_background_is_counted_exactly(ip):
    require("xdp")
    net = ip.run_line_magic("bpf_net", "")
    h = ip.run_cell_magic("bpf", "--dev b -n count_udp", COUNT_UDP)
    flood = net.flood("a", "b", duration=0.5)
    seen = []
    while flood.running:       # what a chapter plots: the counter while the flood runs
        seen.append(h.globals["udp"])
        time.sleep(0.05)
    df = flood.wait()
    assert df["sent"].sum() == df.attrs["sent"] > 100 and len(df) >= 5
    # A flood overruns the veth's queue: what it drops is in the drop counters (veth may show
    # one drop on both ends), and everything else reached XDP.
    lost = _drops(net, "b")[0] + _drops(net, "a")[1]
    assert df.attrs["sent"] - lost <= h.globals["udp"] <= df.attrs["sent"]
    assert seen == sorted(seen) and seen[-1] <= h.globals["udp"]


CHILD = r"""
import json, os, sys
from ebpf_magic.attach import Options
from ebpf_magic.loader import build
from ebpf_magic.netlab import lab_network
from ebpf_magic.netns import inode

net = lab_network()
hs = [build("int kx(struct xdp_md *ctx) { return XDP_PASS; }", "xdp", name="kx", options=Options(dev="b")),
      build("int kt(struct __sk_buff *skb) { return 0; }", "tc", name="kt",
            options=Options(dev="b", direction="ingress")),
      build("int kl(struct __sk_buff *skb) { return 0; }", "tc", name="kl",
            options=Options(dev="a", direction="egress", clsact=True)),
      build("int ks(struct __sk_buff *skb) { return -1; }", "socket", name="ks", options=Options(dev="a"))]
assert net.ping("a", "b", count=3)["replied"].all()
ids = []
for h in hs:
    with open(f"/proc/self/fdinfo/{h.bpf.funcs[h.function.encode()].fd}") as f:
        ids += [int(ln.split()[1]) for ln in f if ln.startswith("prog_id:")]
print(json.dumps({"progs": ids, "netns": [inode(x.fd) for x in net.hosts.values()],
                  "attached": [h.summary()["attached"] for h in hs]}), flush=True)
sys.stdin.read()
"""


def test_kill_9_leaves_nothing(live):
    require("xdp")
    require("tc")
    links_before = {link["id"] for link in _bpftool("link", "list")}
    root_before = _root_links()
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(__file__)) + "/..")
    try:
        state = json.loads(child.stdout.readline())
        assert len(state["progs"]) == 4 and len(state["netns"]) == 2
        assert [a.split()[0] for a in state["attached"]] == ["xdp", "tcx", "clsact", "socket"]
        alive = {p["id"] for p in _bpftool("prog", "list")}
        assert set(state["progs"]) <= alive
        assert set(state["netns"]) <= _netns_inodes()
        child_links = {link["id"] for link in _bpftool("link", "list")
                       if link.get("prog_id") in state["progs"]} - links_before
        assert len(child_links) == 2                      # the XDP and the tcx link
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    # The kernel frees namespaces, devices and programs asynchronously: wait for it, bounded.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progs_left = set(state["progs"]) & {p["id"] for p in _bpftool("prog", "list")}
        links_left = child_links & {link["id"] for link in _bpftool("link", "list")}
        ns_left = set(state["netns"]) & _netns_inodes()
        if not (progs_left or links_left or ns_left):
            break
        time.sleep(0.1)
    assert not progs_left and not links_left and not ns_left, (progs_left, links_left, ns_left)
    assert _root_links() == root_before
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.strip() == ""
    net_list = json.dumps(_bpftool("net", "list"))
    assert not any(f'"id": {pid}' in net_list for pid in state["progs"])
