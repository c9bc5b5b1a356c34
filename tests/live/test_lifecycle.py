"""Re-runs never stack; detach, unload and exit leave nothing loaded."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from ebpf_magic.errors import CompileError, MapError
from tests.conftest import held_prog_ids, kernel_prog_ids

pytestmark = pytest.mark.live

CELL = """
BPF_HASH(counts, u32, u64);
int on_getpid(struct trace_event_raw_sys_enter *ctx) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    counts.increment(pid);
    return 0;
}"""
SEC = "tracepoint/syscalls/sys_enter_getpid"


def test_fifty_reruns_keep_one_program(ip):
    baseline = held_prog_ids()
    seen = set()
    for i in range(50):
        h = ip.run_cell_magic("bpf", f"{SEC} -n probe", CELL)
        held = held_prog_ids() - baseline
        assert len(held) == 1, f"run {i}: {len(held)} programs held"
        seen |= held
    os.getpid()
    assert own_count(h) >= 1
    ip.run_line_magic("bpf_detach", "--all")
    assert held_prog_ids() == baseline
    assert not seen & kernel_prog_ids(), "a re-run's program is still loaded in the kernel"


def own_count(h) -> int:
    df = h["counts"].to_frame()
    return int(df.loc[df.key == os.getpid(), "value"].sum())


def test_rerun_detaches_before_attaching(ip):
    first = ip.run_cell_magic("bpf", f"{SEC} -n probe", CELL)
    second = ip.run_cell_magic("bpf", f"{SEC} -n probe", CELL)
    assert not first.attached and second.attached
    for _ in range(10):
        os.getpid()
    assert own_count(second) >= 10
    with pytest.raises(MapError, match="detached"):
        first["counts"].to_frame()


def test_failed_rerun_leaves_nothing_attached(ip):
    baseline = held_prog_ids()
    ip.run_cell_magic("bpf", f"{SEC} -n probe", CELL)
    with pytest.raises(CompileError):
        ip.run_cell_magic("bpf", f"{SEC} -n probe", CELL.replace("return 0;", "return 0"))
    assert held_prog_ids() == baseline
    assert "probe" not in ip.run_line_magic("bpf_list", "")["name"].tolist()


def test_detach_by_name_and_handle(ip):
    a = ip.run_cell_magic("bpf", f"{SEC} -n a", CELL)
    b = ip.run_cell_magic("bpf", f"{SEC} -n b", CELL)
    assert ip.run_line_magic("bpf_list", "")["name"].tolist() == ["a", "b"]
    ip.run_line_magic("bpf_detach", "a")
    assert not a.attached and b.attached
    b.detach()
    assert ip.run_line_magic("bpf_list", "").empty


def test_context_manager_detaches(live):
    from ebpf_magic import loader

    baseline = held_prog_ids()
    with loader.build(CELL, SEC) as h:
        assert h.attached and len(held_prog_ids() - baseline) == 1
    assert held_prog_ids() == baseline


def test_unload_extension_detaches_everything(ip):
    baseline = held_prog_ids()
    ip.run_cell_magic("bpf", f"{SEC} -n probe", CELL)
    ip.run_line_magic("unload_ext", "ebpf_magic")
    assert held_prog_ids() == baseline
    ip.run_line_magic("load_ext", "ebpf_magic")


def test_interpreter_exit_detaches(live, tmp_path):
    code = textwrap.dedent(f"""\
        from ebpf_magic import loader
        from ebpf_magic.session import SESSION
        h = SESSION.replace("p", lambda: loader.build({CELL!r}, {SEC!r}))
        fd = h.module.bpf.funcs[b"on_getpid"].fd
        print(open(f"/proc/self/fdinfo/{{fd}}").read().split("prog_id:")[1].split()[0])
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    prog_id = int(out.stdout.split()[-1])
    assert prog_id not in kernel_prog_ids()
