"""Every error kind: the exception type, a short message that says where and what to try, nothing left."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from ebpf_magic.errors import (
    AttachError,
    BPFLabError,
    CompileError,
    KernelRefusedError,
    NotRootError,
    UnknownSectionError,
    VerifierError,
)
from tests.conftest import held_prog_ids

pytestmark = pytest.mark.live


def run_failing(ip, line, cell, exc_type) -> BPFLabError:
    before = held_prog_ids()
    with pytest.raises(exc_type) as info:
        ip.run_cell_magic("bpf", line, cell)
    assert held_prog_ids() == before, "a failed cell left a program loaded"
    err = info.value
    rendered = err._render_traceback_()
    assert 1 <= len(rendered) <= 12, rendered
    assert str(err).splitlines()[0].startswith(err.kind)
    return err


def test_unknown_sec_suggests_names(ip):
    err = run_failing(ip, "tracepointt/syscalls/sys_enter_getpid", "int f(void *ctx) { return 0; }",
                      UnknownSectionError)
    assert "tracepoint" in err.hint


def test_compile_error_points_at_cell_line(ip):
    cell = textwrap.dedent("""\
        BPF_HASH(counts, u32, u64);
        int on_getpid(void *ctx) {
            u32 pid = bpf_get_current_pid_tgid() >> 32
            counts.increment(pid);
            return 0;
        }""")
    err = run_failing(ip, "tracepoint/syscalls/sys_enter_getpid", cell, CompileError)
    assert err.where.startswith("cell line 3:")
    assert "expected ';'" in err.what
    assert "bpf_perf_event" not in str(err)  # no prelude or header noise


def test_verifier_rejection_names_the_cell_line(ip):
    cell = textwrap.dedent("""\
        BPF_HASH(counts, u32, u64);
        int on_getpid(void *ctx) {
            u32 pid = bpf_get_current_pid_tgid() >> 32;
            u64 *seen = counts.lookup(&pid);
            u64 next = *seen + 1;
            counts.update(&pid, &next);
            return 0;
        }""")
    err = run_failing(ip, "tracepoint/syscalls/sys_enter_getpid", cell, VerifierError)
    assert "map_value_or_null" in err.what
    assert err.where == "cell line 5: u64 next = *seen + 1;"
    assert (err.cause, err.variable) == ("null_map_value", "seen")
    assert "NULL" in err.explanation and "if (!seen)" in err.hint


def test_attach_failure_suggests_tracepoints(ip):
    err = run_failing(ip, "tracepoint/syscalls/sys_enter_getpidd", "int f(void *ctx) { return 0; }", AttachError)
    assert "tracepoint/syscalls/sys_enter_getpid" in err.hint


def test_unknown_raw_tracepoint(ip):
    err = run_failing(ip, "raw_tp/sched_swich", "int f(void *ctx) { return 0; }", AttachError)
    assert "raw_tp/sched_switch" in err.hint


def test_unknown_btf_target(ip):
    from tests.conftest import require

    require("tp_btf")
    err = run_failing(ip, "tp_btf/no_such_tracepoint", "int f(u64 *ctx) { return 0; }", AttachError)
    assert "btf_trace_no_such_tracepoint" in err.what


def test_kprobe_refused_with_the_feature_reason(ip):
    from ebpf_magic.features import feature

    if feature("kprobe").available:
        pytest.skip("this kernel has kprobes: the refusal path cannot be shown here")
    err = run_failing(ip, "kprobe/do_unlinkat", "int BPF_KPROBE(k, int dfd) { return 0; }", KernelRefusedError)
    assert "kprobes are compiled out" in err.detail


def test_fentry_refused_with_eperm_reason(ip):
    from ebpf_magic.features import feature

    if feature("fentry").available:
        pytest.skip("this kernel loads fentry programs: the refusal path cannot be shown here")
    err = run_failing(ip, "fentry/do_unlinkat", "int BPF_PROG(k) { return 0; }", KernelRefusedError)
    assert "EPERM" in err.detail


def test_not_root(live, tmp_path):
    code = textwrap.dedent("""\
        import os
        os.setgid(65534); os.setuid(65534)
        from ebpf_magic import loader
        from ebpf_magic.errors import NotRootError
        try:
            loader.build("int f(void *ctx) { return 0; }", "tracepoint/syscalls/sys_enter_getpid")
        except NotRootError as exc:
            print("NotRootError:", exc.what)
        """)
    env = dict(os.environ, HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=60)
    assert "NotRootError: loading BPF programs needs root" in out.stdout, out.stderr
    assert NotRootError.kind == "Not allowed"
