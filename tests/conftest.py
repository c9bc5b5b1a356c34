"""Shared fixtures: privilege and feature gates, a clean session, leftover checks."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys

import pytest

REQUIRE_LIVE = os.environ.get("EBPF_MAGIC_REQUIRE_LIVE") == "1"


def kernel_prog_ids() -> set[int]:
    """Ids of every BPF program loaded on the machine (bpftool's view)."""
    out = subprocess.run(["bpftool", "-j", "prog", "list"], capture_output=True, text=True, check=True)
    return {p["id"] for p in json.loads(out.stdout or "[]")}


def descendants(pid: int) -> set[int]:
    """pid and every live process it started (BPF fds may live in a child, e.g. a `!bpftool` cell)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p not in found:
            found.add(p)
            todo.extend(children.get(p, []))
    return found


def held_prog_ids(pid: int | str = "self") -> set[int]:
    """Programs this process keeps alive through a program or link fd.

    Other processes may load programs meanwhile; what this process holds is
    exactly what the lab loaded in it.
    """
    ids = set()
    base = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(base):
        try:
            with open(f"{base}/{fd}") as f:
                for line in f:
                    if line.startswith("prog_id:"):
                        ids.add(int(line.split()[1]))
        except OSError:
            continue
    return ids


def held_link_ids(pid: int | str = "self") -> set[int]:
    """BPF links this process holds an fd of (cgroup, sockmap, perf, ... links)."""
    return _fdinfo_ids(pid, "link_id:")


def held_sockmap_ids(pid: int | str = "self") -> set[int]:
    """Sockmaps and sockhashes (map types 15, 18) this process holds an fd of."""
    return _fdinfo_ids(pid, "map_id:", lambda text: any(f"map_type:\t{t}\n" in text for t in (15, 18)))


def _fdinfo_ids(pid, field: str, keep=lambda _text: True) -> set[int]:
    ids = set()
    base = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(base):
        try:
            with open(f"{base}/{fd}") as f:
                text = f.read()
        except OSError:
            continue
        if keep(text):
            ids.update(int(ln.split()[1]) for ln in text.splitlines() if ln.startswith(field))
    return ids


def require(family: str) -> None:
    """Skip where this kernel lacks ``family`` (printing why); never skip a family it has.

    With EBPF_MAGIC_REQUIRE_LIVE=1 (CI), not being able to test a family the
    CI kernel runs (``families.CI_FAMILIES``) fails instead of skipping: no
    root, an unmounted tracefs or a missing tool is a broken set-up, not a
    kernel limit.
    """
    if os.geteuid() != 0:
        msg = "live tests need root"
        if REQUIRE_LIVE:
            pytest.fail(f"{msg} (EBPF_MAGIC_REQUIRE_LIVE=1)")
        pytest.skip(msg)
    from ebpf_magic.families import CI_FAMILIES
    from ebpf_magic.features import feature

    f = feature(family)
    if f is not None and not f.available:
        if REQUIRE_LIVE and family in CI_FAMILIES:
            pytest.fail(f"{family} must run on the CI kernel, but its probe failed: {f.reason} "
                        "(EBPF_MAGIC_REQUIRE_LIVE=1; see families.CI_FAMILIES)")
        print(f"SKIP {family}: {f.reason}")
        pytest.skip(f"this kernel lacks {family}: {f.reason}")


@pytest.fixture
def live():
    """For live tests: root, a clean lab session, and no program left behind afterwards."""
    require("tracepoint")
    from ebpf_magic.cgroups import lab_cgroups
    from ebpf_magic.session import SESSION

    before, links_before, maps_before = held_prog_ids(), held_link_ids(), held_sockmap_ids()
    yield SESSION
    SESSION.release_all()
    left = held_prog_ids() - before
    assert not left, f"programs left loaded after the test: {sorted(left)}"
    assert not left & kernel_prog_ids()
    links = held_link_ids() - links_before
    assert not links, f"BPF links left after the test: {sorted(links)}"
    maps = held_sockmap_ids() - maps_before
    assert not maps, f"sockmaps held by no handle after the test: {sorted(maps)}"
    cgroups = lab_cgroups(os.getpid())
    assert not cgroups, f"lab cgroups left after the test: {cgroups}"


@pytest.fixture
def ip(live):
    """An IPython shell with the extension loaded."""
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    start_ipython()  # once per process; later calls return None
    shell = get_ipython()
    shell.run_line_magic("load_ext", "ebpf_magic")
    yield shell
    shell.run_line_magic("bpf_detach", "--all")


@pytest.fixture
def lab_net(ip, request):
    """The lab network for a test module whose NET_FAMILY names the family it attaches (skips without it)."""
    require(request.module.NET_FAMILY)
    return ip.run_line_magic("bpf_net", "")


TARGET_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>

/* noinline + asm: the call must survive -O2 so the uprobe has a function to hit. */
__attribute__((noinline)) int lab_target(int x) { asm volatile(""); return 2 * x; }

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10, sum = 0;
    if (argc > 2) getchar();   /* wait until the test has attached with --pid */
    for (int i = 1; i <= n; i++) {
        sum += lab_target(i);
        DTRACE_PROBE2(lab, tick, i, sum);
    }
    printf("%d\n", sum);
    return 0;
}
"""


@pytest.fixture(scope="session")
def target_binary(tmp_path_factory) -> str:
    """A small program with a function to uprobe and a USDT probe lab:tick."""
    if not shutil.which("gcc"):
        pytest.fail("gcc is missing: make test installs it (scripts/setup-system.sh)")
    d = tmp_path_factory.mktemp("target")
    (d / "target.c").write_text(TARGET_C)
    subprocess.run(["gcc", "-O2", "-g", "-o", str(d / "lab_target"), str(d / "target.c")], check=True)
    return str(d / "lab_target")


@contextlib.contextmanager
def gil_until_done(patience: float = 60.0):
    """A thread that never blocks keeps the GIL until it ends (not just for the default 5 ms), so a
    reader in another thread cannot drain a buffer while a producer thread fills it."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(patience)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@pytest.fixture
def bcc(live):
    """Plain BCC (``BPF(text=...)``) with SELF_PID defined, cleaned up after the test."""
    from bcc import BPF

    made = []

    def load(text: str):
        b = BPF(text=text, cflags=["-w", f"-DSELF_PID={os.getpid()}"])
        made.append(b)
        return b

    yield load
    for b in made:
        b.cleanup()
