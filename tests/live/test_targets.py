"""One spelling of targets: library names resolve alike in both engines; each missing thing says so."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from ebpf_magic import attach, cell, loader
from ebpf_magic.errors import AttachError, BPFLabError, UsageError
from tests.conftest import require

pytestmark = pytest.mark.live

SIZE = 12345  # the child mallocs this size N times: nothing else in it asks for exactly that

CHILD_C = r"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    getchar();                 /* wait until the test has attached */
    for (int i = 0; i < n; i++) {
        void *volatile p = malloc(SIZE);
        free(p);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def malloc_child(tmp_path_factory) -> str:
    if not shutil.which("gcc"):
        pytest.fail("gcc is missing: make test installs it (scripts/setup-system.sh)")
    d = tmp_path_factory.mktemp("malloc_child")
    (d / "child.c").write_text(CHILD_C)
    # -O0: gcc may drop a malloc/free pair it can see through.
    subprocess.run(["gcc", "-O0", f"-DSIZE={SIZE}", "-o", str(d / "child"), str(d / "child.c")], check=True)
    return str(d / "child")


def _libc_of(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as f:
        return next(line.split()[-1] for line in f if line.rstrip().endswith("/libc.so.6"))


LIBC = _libc_of(os.getpid())

BCC_CELL = f"""
BPF_ARRAY(calls, u64, 1);
int on_malloc(struct pt_regs *ctx) {{
    if (PT_REGS_PARM1(ctx) != {SIZE}) return 0;
    int zero = 0;
    calls.increment(zero);
    return 0;
}}"""

CORE_CELL = f"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
u64 calls = 0;
u32 seen_tgid = 0;
SEC("uprobe/LIB:malloc")
int BPF_UPROBE(on_malloc, size_t size) {{
    if (size != {SIZE}) return 0;
    seen_tgid = bpf_get_current_pid_tgid() >> 32;
    __sync_fetch_and_add(&calls, 1);
    return 0;
}}
char LICENSE[] SEC("license") = "GPL";
"""

SPELLINGS = ["libc.so.6", "libc", "c", LIBC]


class Child:
    """The malloc child, started and waiting on stdin until the probe is attached."""

    def __init__(self, binary: str, n: int):
        self.n = n
        self.proc = subprocess.Popen([binary, str(n)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)

    def run(self) -> None:
        self.proc.communicate(b"\n", timeout=60)
        assert self.proc.returncode == 0

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def child(malloc_child):
    started = []

    def start(n: int) -> Child:
        c = Child(malloc_child, n)
        started.append(c)
        return c

    yield start
    for c in started:
        c.close()


def _bcc_calls(h) -> int:
    return int(h["calls"].to_frame()["value"].iloc[0])


@pytest.mark.parametrize("lib", SPELLINGS)
def test_bcc_uprobe_counts_a_childs_mallocs(ip, child, lib):
    require("uprobe")
    c = child(37)
    h = ip.run_cell_magic("bpf", f"uprobe/{lib}:malloc --pid {c.proc.pid} -n m", BCC_CELL)
    (point,) = [a.point for a in h.attachments]
    assert os.path.samefile(point.rsplit(":", 1)[0], LIBC)  # every spelling attaches to the same file
    c.run()
    assert _bcc_calls(h) == c.n


@pytest.mark.parametrize("lib", SPELLINGS)
def test_core_uprobe_counts_a_childs_mallocs_with_pid(ip, child, lib):
    require("uprobe")
    c, other = child(23), child(5)
    h = ip.run_cell_magic("bpf", f"--pid {c.proc.pid} -n m", CORE_CELL.replace("LIB", lib))
    assert h.engine == "core"
    other.run()   # the same binary, another process: --pid keeps it out
    c.run()
    g = h.globals
    assert g["calls"] == c.n
    assert g["seen_tgid"] == c.proc.pid
    assert h.programs["attached"].tolist() == [True]


def test_core_uprobe_without_pid_sees_every_process(ip, child):
    require("uprobe")
    a, b = child(4), child(6)
    h = ip.run_cell_magic("bpf", "-n m", CORE_CELL.replace("LIB", "libc.so.6"))
    a.run()
    b.run()
    assert h.globals["calls"] == a.n + b.n


def test_uretprobe_with_library_name_in_both_engines(ip, child):
    require("uretprobe")
    ret_bcc = """
BPF_ARRAY(calls, u64, 1);
int on_ret(struct pt_regs *ctx) {
    if (PT_REGS_RC(ctx) == 0) return 0;
    int zero = 0;
    calls.increment(zero);
    return 0;
}"""
    c = child(9)
    h = ip.run_cell_magic("bpf", f"uretprobe/c:malloc --pid {c.proc.pid} -n r", ret_bcc)
    c.run()
    assert _bcc_calls(h) >= c.n  # every malloc of the child returns; libc startup adds a few
    ret_core = """
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
u64 calls = 0;
SEC("uretprobe/libc:malloc")
int BPF_URETPROBE(on_ret, void *p) { if (p) __sync_fetch_and_add(&calls, 1); return 0; }
char LICENSE[] SEC("license") = "GPL";
"""
    c2 = child(11)
    h2 = ip.run_cell_magic("bpf", f"--pid {c2.proc.pid} -n r2", ret_core)
    c2.run()
    assert h2.globals["calls"] >= c2.n


def test_bcc_and_core_probe_the_same_function_together(ip, child):
    # BCC 0.26 used to register its uprobe with a stray USDT semaphore offset; the kernel then
    # refused any other uprobe on malloc with EINVAL while the BCC one was attached.
    require("uprobe")
    c = child(17)
    bcc_h = ip.run_cell_magic("bpf", f"uprobe/c:malloc --pid {c.proc.pid} -n mb", BCC_CELL)
    core_h = ip.run_cell_magic("bpf", f"--pid {c.proc.pid} -n mc", CORE_CELL.replace("LIB", "libc.so.6"))
    c.run()
    assert _bcc_calls(bcc_h) == c.n
    assert core_h.globals["calls"] == c.n


# --- missing things --------------------------------------------------------------------------

def _gone_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_missing_process_at_parse_time(ip):
    with pytest.raises(UsageError, match="--pid 999999: no such process"):
        ip.run_cell_magic("bpf", "uprobe/libc:malloc --pid 999999 -n m", BCC_CELL)


@pytest.mark.parametrize("engine", ["bcc", "core"])
def test_process_that_exits_before_attach_is_named(live, child, engine):
    require("uprobe")
    c = child(1)
    if engine == "bcc":
        parsed = cell.make(BCC_CELL, "uprobe/libc:malloc", options=attach.Options(pid=c.proc.pid))
    else:
        parsed = cell.make(CORE_CELL.replace("LIB", "libc"), options=attach.Options(pid=c.proc.pid))
    c.close()  # killed and reaped between reading the cell and attaching
    with pytest.raises(AttachError, match=f"process {c.proc.pid} does not exist") as e:
        loader.run(parsed)
    assert "ps -e" in e.value.hint


@pytest.mark.parametrize("engine", ["bcc", "core"])
def test_missing_library_says_where_it_looked(ip, engine):
    require("uprobe")
    with pytest.raises(AttachError) as e:
        _run(ip, engine, "libnosuch.so.3")
    assert "libnosuch.so.3" in e.value.what
    assert "/usr/lib64" in e.value.detail and "ldconfig -p" in e.value.detail


@pytest.mark.parametrize("engine", ["bcc", "core"])
def test_missing_symbol_names_binary_and_close_symbols(ip, engine):
    require("uprobe")
    with pytest.raises(AttachError) as e:
        _run(ip, engine, "libc.so.6", symbol="mallocc")
    assert "mallocc" in e.value.what and os.path.samefile(e.value.what.rsplit(" in ", 1)[1], LIBC)
    assert "did you mean malloc" in e.value.hint and "nm -D" in e.value.hint


def _run(ip, engine: str, lib: str, symbol: str = "malloc"):
    if engine == "bcc":
        return ip.run_cell_magic("bpf", f"uprobe/{lib}:{symbol} -n m", BCC_CELL)
    return ip.run_cell_magic("bpf", "-n m", CORE_CELL.replace("LIB", lib).replace(":malloc", f":{symbol}"))


@pytest.mark.parametrize("engine", ["bcc", "core"])
def test_missing_tracepoint_suggests_close_ones(ip, engine):
    if engine == "bcc":
        call = lambda: ip.run_cell_magic("bpf", "tracepoint/syscalls/sys_enter_getpidd -n t",  # noqa: E731
                                         "int f(void *ctx) { return 0; }")
    else:
        call = lambda: ip.run_cell_magic("bpf", "-n t", '#include "vmlinux.h"\n'  # noqa: E731
                                         "#include <bpf/bpf_helpers.h>\n"
                                         'SEC("tp/syscalls/sys_enter_getpidd") int f(void *ctx) { return 0; }\n'
                                         'char LICENSE[] SEC("license") = "GPL";\n')
    with pytest.raises(AttachError) as e:
        call()
    assert "syscalls:sys_enter_getpidd" in e.value.what
    assert "tracepoint/syscalls/sys_enter_getpid" in e.value.hint and "available_events" in e.value.hint


def test_nothing_stays_loaded_after_the_errors(ip, live):
    # The `live` fixture also checks, after the test, that this process holds no program.
    for engine in ("bcc", "core"):
        for lib in ("libnosuch.so.3", "libc.so.6"):
            with pytest.raises(BPFLabError):
                _run(ip, engine, lib, symbol="no_such_function_here")
    assert "m" not in live and len(live) == 0


def test_core_usdt_by_program_name_with_pid(ip, target_binary, monkeypatch):
    # A program named without '/' is looked up on PATH, as libbpf does; --pid keeps the other run out.
    require("usdt")
    monkeypatch.setenv("PATH", os.path.dirname(target_binary) + os.pathsep + os.environ["PATH"])
    cell_text = """
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/usdt.bpf.h>
u64 ticks = 0, total = 0;
SEC("usdt/lab_target:lab:tick")
int BPF_USDT(on_tick, int i, int sum) { ticks++; total += i; return 0; }
char LICENSE[] SEC("license") = "GPL";
"""
    mine = subprocess.Popen([target_binary, "8", "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    other = subprocess.Popen([target_binary, "5", "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        # usdt.bpf.h includes <linux/errno.h>, whose asm/ header lives in the multiarch directory.
        h = ip.run_cell_magic("bpf", f"--pid {mine.pid} -n u", cell_text)
        for p in (other, mine):
            p.communicate(b"\n", timeout=60)
        assert h.globals["ticks"] == 8 and h.globals["total"] == 36
        assert h.attachments[0].kind == "usdt"
    finally:
        for p in (mine, other):
            if p.poll() is None:
                p.kill()
            p.wait()
