"""CO-RE cells compiled against a vmlinux.h of only the kernel types they name."""
from __future__ import annotations

import os
import tempfile

import pytest

from ebpf_magic.core import toolchain, vmlinux_subset

pytestmark = pytest.mark.live

# task->mm->arg_start: mm_struct is reached through a pointer the cell never names, so the first
# subset lacks it and the compile must add it from clang's error.
CHAIN = """\
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64);
         __type(key, u32); __type(value, u64); } seen SEC(".maps");
SEC("tp/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    u32 tgid = BPF_CORE_READ(t, tgid);
    u64 args = BPF_CORE_READ(t, mm, arg_start);
    u64 ppid = BPF_CORE_READ(t, real_parent, tgid);
    u32 k0 = tgid, k1 = tgid + 1;
    bpf_map_update_elem(&seen, &k0, &args, BPF_ANY);
    bpf_map_update_elem(&seen, &k1, &ppid, BPF_ANY);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def subset_only():
    if not vmlinux_subset.supported():
        pytest.skip("the subset header needs x86-64 (btf_dump's va_list through ctypes)")


def test_chained_read_compiles_with_the_subset_and_reads_this_process(subset_only):
    from ebpf_magic import loader

    path, _ = toolchain.clang()
    d = toolchain.kernel_dir()
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "cell"), "w") as f:
            f.write(CHAIN)
        proc = toolchain._compile_with_subset(path, toolchain.base_flags(d), d, CHAIN, tmp,
                                              os.path.join(tmp, "cell.o"))
    assert proc is not None and proc.returncode == 0, "fell back to the whole vmlinux.h"

    h = loader.build(CHAIN + f"// {os.getpid()} {id(object())}\n", engine="core", name="subset_chain")
    try:
        me = os.getpid()
        df = h["seen"].to_frame()
        for _ in range(10_000):  # a getppid() of ours fires the program; a few are plenty
            if me in set(df["key"]):
                break
            os.getppid()
            df = h["seen"].to_frame()
        assert me in set(df["key"]), "the program never saw this process's getppid()"
        values = dict(zip(df["key"], df["value"], strict=True))
        # CO-RE relocated the fields of the partial types to this kernel's offsets.
        with open(f"/proc/{me}/stat") as f:
            stat = f.read().rsplit(")", 1)[1].split()
        assert values[me + 1] == os.getppid()
        assert values[me] == int(stat[45])  # arg_start, field 48 of /proc/PID/stat
    finally:
        h.detach()


def test_header_holds_only_named_types(subset_only):
    d = toolchain.kernel_dir()
    inc = vmlinux_subset.header(d, vmlinux_subset.names_in(CHAIN))
    with open(os.path.join(inc, "vmlinux.h")) as f:
        text = f.read()
    assert "struct task_struct {" in text
    assert "preserve_access_index" in text
    # Only forward-declared: the cell reaches it through a pointer, and the whole closure is what made clang slow.
    assert "struct mm_struct {" not in text
    whole = os.path.getsize(os.path.join(d, "vmlinux.h"))
    assert len(text) < whole / 10
