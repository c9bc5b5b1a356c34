"""libbpf 1.4's macros in CO-RE cells, the compiler's warnings under the cell, the versions in use."""
from __future__ import annotations

import subprocess

import pytest

from tests.conftest import require

pytestmark = pytest.mark.live

UPROBE = """\
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

int calls = 0;
long last_arg = 0;

SEC("uprobe/TARGET:lab_target")
int BPF_UPROBE(f, int x) {
    __sync_fetch_and_add(&calls, 1);
    last_arg = x;
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_bpf_uprobe_attaches_a_program_named_f(ip, target_binary):
    require("uprobe")
    h = ip.run_cell_magic("bpf", "-n up", UPROBE.replace("TARGET", target_binary))
    progs = h.programs
    assert list(progs.program) == ["f"] and bool(progs.attached.iloc[0])
    assert h.warnings == ()
    subprocess.run([target_binary, "7"], check=True, capture_output=True)
    assert h.globals["calls"] == 7
    assert h.globals["last_arg"] == 7


def test_compiler_warnings_are_shown_under_the_cell(ip, capsys):
    cell = """\
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
int hits = 0;
SEC("tp/syscalls/sys_enter_getppid")
int g(void *ctx) {
    int unused_but_set;
    unused_but_set = 1;
    hits++;
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""
    h = ip.run_cell_magic("bpf", "-n warned --cflags=-Wunused-but-set-variable", cell)
    assert len(h.warnings) == 1 and "unused_but_set" in h.warnings[0]
    assert h.warnings[0].startswith("cell line 6:")
    err = capsys.readouterr().err
    assert "compiler warnings:" in err and "cell line 6:" in err


def test_bcc_warnings_name_cell_lines(ip):
    cell = """\
BPF_HASH(counts, u32, u64);
int on_getppid(void *ctx) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    int *p = 0;
    long n = (long)p;
    u64 one = 1;
    counts.update(&pid, &one);
    return 0;
}"""
    h = ip.run_cell_magic("bpf", "tracepoint/syscalls/sys_enter_getppid -n bw --cflags=-Wunused-variable", cell)
    assert any(w.startswith("cell line 5:") and "'n'" in w for w in h.warnings), h.warnings


def test_features_print_the_tool_versions(ip, capsys):
    df = ip.run_line_magic("bpf_features", "")
    for tool in ("libbpf", "bpftool", "clang", "bcc"):
        assert df.attrs[tool] and "missing" not in df.attrs[tool]
    assert df.attrs["libbpf"] >= "1.3"
    assert "bpftool v7." in df.attrs["bpftool"]
    assert "libbpf: " in capsys.readouterr().out
