"""CO-RE relocations against the cell's cut of the kernel BTF give what the whole kernel BTF gives."""
from __future__ import annotations

import os

import pytest

from ebpf_magic.core import toolchain, vmlinux_subset

pytestmark = pytest.mark.live

# Three kinds of relocation: a field read through two pointers, a field that exists in this kernel
# (task_struct.__state, since 5.14) and one that only an older kernel's flavour has (task_struct.state).
FLAVOURS = """\
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
struct task_struct___old { long state; } __attribute__((preserve_access_index));
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64);
         __type(key, u32); __type(value, u64); } seen SEC(".maps");
SEC("tp/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    u32 tgid = BPF_CORE_READ(t, tgid);
    u64 ppid = BPF_CORE_READ(t, real_parent, tgid);
    u64 has_new = bpf_core_field_exists(t->__state);
    u64 has_old = bpf_core_field_exists(((struct task_struct___old *)t)->state);
    u32 k = tgid * 4;
    bpf_map_update_elem(&seen, &k, &ppid, BPF_ANY);
    k++;
    bpf_map_update_elem(&seen, &k, &has_new, BPF_ANY);
    k++;
    bpf_map_update_elem(&seen, &k, &has_old, BPF_ANY);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""
# The same program without a type of its own: every relocation is against vmlinux.h's types.
PLAIN = FLAVOURS.replace("struct task_struct___old { long state; } __attribute__((preserve_access_index));\n",
                         "").replace("((struct task_struct___old *)t)->state", "t->pid")


@pytest.fixture
def subset_only():
    if not vmlinux_subset.supported():
        pytest.skip("the subset header needs x86-64 (btf_dump's va_list through ctypes)")


def _read(cell: str, name: str) -> tuple[int, int, int]:
    from ebpf_magic import loader

    h = loader.build(cell, engine="core", name=name)
    try:
        me = os.getpid()
        for _ in range(10_000):  # a getppid() of ours fires the program; a few are plenty
            os.getppid()
            df = h["seen"].to_frame()
            got = dict(zip(df["key"], df["value"], strict=True))
            if {me * 4, me * 4 + 1, me * 4 + 2} <= got.keys():
                return got[me * 4], got[me * 4 + 1], got[me * 4 + 2]
        raise AssertionError("the program never saw this process")
    finally:
        h.detach()


def test_plain_cell_relocates_against_its_subset_btf(subset_only):
    cell = PLAIN + f"// {os.getpid()} {id(object())}\n"
    compiled = toolchain.compile_cell(cell)
    assert compiled.target_btf and os.path.getsize(compiled.target_btf) > 0, "no subset BTF beside the object"
    assert os.path.getsize(compiled.target_btf) < os.path.getsize(toolchain.VMLINUX_BTF) // 10
    ppid, has_new, has_pid = _read(cell, "subset_btf_plain")
    assert (ppid, has_new, has_pid) == (os.getppid(), 1, 1)


def test_flavoured_type_relocates_against_the_subset_and_gets_the_flavour_right(subset_only):
    cell = FLAVOURS + f"// {os.getpid()} {id(object())}\n"
    # task_struct___old is matched as task_struct, which the subset holds because the cell names a flavour of it
    assert toolchain.compile_cell(cell).target_btf is not None
    ppid, has_new, has_old = _read(cell, "subset_btf_flavour")
    assert (ppid, has_new, has_old) == (os.getppid(), 1, 0)


def test_a_type_the_kernel_lacks_keeps_the_whole_btf(subset_only):
    # A cell's own CO-RE type outside vmlinux (a module's, or none at all): libbpf must search every BTF.
    cell = FLAVOURS.replace("task_struct___old { long state; }", "lab_only_type { long state; }").replace(
        "struct task_struct___old *", "struct lab_only_type *") + f"// {os.getpid()} {id(object())}\n"
    assert toolchain.compile_cell(cell).target_btf is None
    ppid, has_new, has_state = _read(cell, "subset_btf_foreign")
    assert (ppid, has_new, has_state) == (os.getppid(), 1, 0)
