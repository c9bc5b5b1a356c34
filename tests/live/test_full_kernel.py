"""The families only a full kernel runs, with both engines: kprobe and kretprobe (also at an offset),
ksyscall and kretsyscall, fentry and fexit, fmod_ret and lsm.

Each test makes its own event (a read of its own file, a close() of an fd that cannot exist, a
getppid(), an open of its own file) and checks the data the program saw. On a kernel that lacks the
family, ``require()`` skips with the kernel's reason; the full-kernel VM (``make vm-test``) runs them.

BCC cells are kept few and tiny (under qemu TCG each BCC compile costs seconds to a minute) and read
no kernel struct through BCC's headers: where a BCC program needs a field (fmod_ret, lsm), its offset
comes from this kernel's BTF as a -D flag. CO-RE programs read kernel structs with BPF_CORE_READ
(kprobes) or directly (fentry, fexit, fmod_ret, lsm).
"""
from __future__ import annotations

import errno
import os
import platform
import struct
from pathlib import Path

import pytest

from tests.conftest import require

pytestmark = [pytest.mark.live, pytest.mark.full_kernel]

READ_SIZE = 4321        # the count every test read asks for: no other read of this process asks for it
FILE_SIZE = 1237        # what such a read returns from the test's file (then 0 at its end)
BAD_FD = 1_000_003      # above any RLIMIT_NOFILE: close() returns -EBADF without touching a real fd

HEAD = """\
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
"""
LICENSE = '\nchar LICENSE[] SEC("license") = "GPL";\n'


# --- helpers --------------------------------------------------------------------------------------------

def core(cell: str, name: str, **sets):
    """A CO-RE cell compiled, loaded and attached; use it as a context manager (it detaches)."""
    from ebpf_magic import loader

    return loader.build(cell, engine="core", name=name, sets={k: str(v) for k, v in sets.items()})


def bcc(cell: str, sec: str, name: str, **defines):
    """A BCC cell attached at SEC; TARGET_PID is this process; use it as a context manager."""
    from ebpf_magic import loader

    flags = [f"-DTARGET_PID={os.getpid()}"] + [f"-D{k}={v}" for k, v in defines.items()]
    return loader.build(cell, sec, name=name, cflags=flags)


@pytest.fixture
def data_file(tmp_path) -> Path:
    path = tmp_path / "full-kernel-data"
    path.write_bytes(b"d" * FILE_SIZE)
    return path


def read_twice(path: Path) -> list[int]:
    """Two read(fd, READ_SIZE) of the file: FILE_SIZE bytes, then 0 at its end."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return [len(os.read(fd, READ_SIZE)) for _ in range(2)]
    finally:
        os.close(fd)


def kallsyms(symbol: str) -> int:
    """The address of a kernel function (root sees real addresses)."""
    with open("/proc/kallsyms") as f:
        for line in f:
            addr, kind, name = line.split()[:3]
            if name == symbol and kind in "tT":
                return int(addr, 16)
    pytest.fail(f"{symbol} is not in /proc/kallsyms")


PEEK = HEAD + """
const volatile u64 addr = 0;
const volatile u32 me = 0;
unsigned char text[16];
long err = 1;

SEC("tp/syscalls/sys_enter_getppid")
int peek(void *ctx)
{
    if ((bpf_get_current_pid_tgid() >> 32) != me)
        return 0;
    err = bpf_probe_read_kernel(text, sizeof(text), (void *)addr);
    return 0;
}
""" + LICENSE

ENDBR64, ENDBR_POISON = bytes.fromhex("f30f1efa"), bytes.fromhex("0f1f40d6")  # IBT landing pad, sealed form
NOP5 = bytes.fromhex("0f1f440000")                                           # the idle ftrace call site
ARM64_PROLOGUE = {0xD503245F, 0xD50324DF, 0xD503201F, 0xAA1E03E9, 0xD503233F}  # bti c/jc, nop, mov x9,x30, paciasp


def instruction_boundary(symbol: str) -> int:
    """An offset into ``symbol`` that starts an instruction and that kprobes accept, or 0.

    The kernel refuses a kprobe inside an instruction (EILSEQ), and libbpf and BCC pass any offset on,
    so the offset has to come from the code itself. A tracepoint program reads the function's first
    bytes (/proc/kcore is not everywhere); the x86-64 entry is an optional 4-byte ENDBR64 (IBT) and the
    5-byte ftrace call site (a NOP5, or a call/jmp while something traces it): the instruction after
    them is a boundary and not the function entry, so the kprobe there is a real +offset probe, with
    the arguments still in their registers. On arm64 every instruction has 4 bytes; the offset skips
    the landing pad and the patchable ftrace NOPs. Anything else gives 0: the test then spells +0x0.
    """
    addr = kallsyms(symbol)
    with core(PEEK, "peek", addr=addr, me=os.getpid()) as h:
        os.getppid()
        g = h.globals
    assert g["err"] == 0, f"bpf_probe_read_kernel of {symbol}'s code failed: {g['err']}"
    code = bytes(g["text"])
    machine = platform.machine()
    if machine == "x86_64":
        off = 4 if code[:4] in (ENDBR64, ENDBR_POISON) else 0
        if code[off:off + 5] == NOP5 or code[off] in (0xE8, 0xE9):  # nop5, call rel32, jmp rel32
            return off + 5
        return 0
    if machine == "aarch64":
        words = struct.unpack("<4I", code)
        n = 0
        while n < 4 and (words[n] in ARM64_PROLOGUE or words[n] >> 26 == 0b100101):  # ... or bl
            n += 1
        return 4 * n if n < 4 else 0
    return 0


def btf_offset(struct_name: str, member: str) -> int:
    """offsetof(struct_name, member) in the running kernel, from its BTF."""
    from ebpf_magic.core.btf import Btf

    with Btf.vmlinux() as btf:
        for name, _type, bit, width in btf.members(btf.find(struct_name, "struct")):
            if name == member and not width:
                return bit // 8
    pytest.fail(f"no member {member} in struct {struct_name} of this kernel's BTF")


def bpf_lsm_active() -> None:
    with open("/sys/kernel/security/lsm") as f:
        active = f.read().strip().split(",")
    assert "bpf" in active, f"lsm programs load but never run: bpf is not an active LSM ({active}); boot " \
                            "with lsm=...,bpf"


# --- kprobe, kretprobe ------------------------------------------------------------------------------------

KPROBE_READ = HEAD + """
struct read_event {
    u64 count;          /* BPF_KPROBE's third argument */
    u64 parm3;          /* the same register, read with PT_REGS_PARM3(ctx) */
    u64 ino;
    char name[32];
};
struct read_event *_read_event_btf __attribute__((unused));
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 16); } events SEC(".maps");
const volatile u32 target_pid = 0;

SEC("kprobe/vfs_read")
int BPF_KPROBE(on_read, struct file *file, char *buf, size_t count)
{
    if ((bpf_get_current_pid_tgid() >> 32) != target_pid)
        return 0;
    struct read_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e)
        return 0;
    e->count = count;
    e->parm3 = PT_REGS_PARM3(ctx);
    e->ino = BPF_CORE_READ(file, f_inode, i_ino);
    bpf_probe_read_kernel_str(e->name, sizeof(e->name), BPF_CORE_READ(file, f_path.dentry, d_name.name));
    bpf_ringbuf_submit(e, 0);
    return 0;
}
""" + LICENSE


def test_core_kprobe_arguments_and_struct_fields(live, data_file):
    require("kprobe")
    with core(KPROBE_READ, "kp_read", target_pid=os.getpid()) as h:
        assert read_twice(data_file) == [FILE_SIZE, 0]
        ev = h.events("events", duration=0.2)
    mine = ev[ev["name"] == data_file.name]
    assert len(mine) == 2, ev
    assert set(mine["count"]) == set(mine["parm3"]) == {READ_SIZE}  # argument 3 is PT_REGS_PARM3
    assert set(mine["ino"]) == {os.stat(data_file).st_ino}


KPROBE_AT = HEAD + """
const volatile u32 target_pid = 0;
u64 hits, ip, count;

SEC("kprobe/vfs_read+OFFSET")
int on_read_at(struct pt_regs *ctx)
{
    if ((bpf_get_current_pid_tgid() >> 32) != target_pid || PT_REGS_PARM3(ctx) != READ_SIZE)
        return 0;
    __sync_fetch_and_add(&hits, 1);
    ip = PT_REGS_IP(ctx);
    count = PT_REGS_PARM3(ctx);
    return 0;
}
""" + LICENSE


def test_core_kprobe_at_an_offset(live, data_file):
    require("kprobe")
    off = instruction_boundary("vfs_read")
    cell = KPROBE_AT.replace("OFFSET", f"{off:#x}").replace("READ_SIZE", str(READ_SIZE))
    with core(cell, "kp_offset", target_pid=os.getpid()) as h:
        assert f'SEC("kprobe/vfs_read+{off:#x}")' in cell
        read_twice(data_file)
        g = h.globals
    assert g["hits"] == 2 and g["count"] == READ_SIZE, g
    # The probe sat at vfs_read+off: x86 reports the address after the int3 (or the ftrace call), arm64 the pc;
    # at +0x0 an IBT kernel moves the probe past the ENDBR64.
    assert g["ip"] - (kallsyms("vfs_read") + off) in ((0, 1) if off else range(0, 6)), (hex(g["ip"]), off)


KRETPROBE_READ = HEAD + """
struct ret_event { u64 count; s64 ret; s64 rc; };
struct ret_event *_ret_event_btf __attribute__((unused));
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1024);
         __type(key, u32); __type(value, u64); } counts SEC(".maps");   /* tid -> count at entry */
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 16); } events SEC(".maps");
const volatile u64 target_ino = 0;

SEC("kprobe/vfs_read")
int BPF_KPROBE(read_entry, struct file *file, char *buf, size_t count)
{
    if (BPF_CORE_READ(file, f_inode, i_ino) != target_ino)
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u64 c = count;
    bpf_map_update_elem(&counts, &tid, &c, BPF_ANY);
    return 0;
}

SEC("kretprobe/vfs_read")
int BPF_KRETPROBE(read_exit, ssize_t ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u64 *c = bpf_map_lookup_elem(&counts, &tid);
    if (!c)
        return 0;
    struct ret_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (e) {
        e->count = *c;
        e->ret = ret;
        e->rc = PT_REGS_RC(ctx);
        bpf_ringbuf_submit(e, 0);
    }
    bpf_map_delete_elem(&counts, &tid);
    return 0;
}
""" + LICENSE


def test_core_kretprobe_return_values(live, data_file):
    require("kprobe")
    require("kretprobe")
    with core(KRETPROBE_READ, "kretp_read", target_ino=os.stat(data_file).st_ino) as h:
        assert read_twice(data_file) == [FILE_SIZE, 0]
        ev = h.events("events", duration=0.2)
    assert [tuple(r) for r in ev[["count", "ret", "rc"]].itertuples(index=False)] == [
        (READ_SIZE, FILE_SIZE, FILE_SIZE), (READ_SIZE, 0, 0)], ev


BCC_KPROBE = """
BPF_HASH(seen, u64, u64);   /* PT_REGS_IP -> PT_REGS_PARM3 */

int BPF_KPROBE(on_read, void *file, void *buf, unsigned long count)
{
    if (bpf_get_current_pid_tgid() >> 32 != TARGET_PID || count != READ_SIZE)
        return 0;
    u64 ip = PT_REGS_IP(ctx), parm3 = PT_REGS_PARM3(ctx);
    seen.update(&ip, &parm3);
    return 0;
}
"""


@pytest.mark.parametrize("at", ["entry", "offset"])
def test_bcc_kprobe_entry_and_offset(live, data_file, at):
    require("kprobe")
    off = instruction_boundary("vfs_read") if at == "offset" else 0
    sec = f"kprobe/vfs_read+{off:#x}" if at == "offset" else "kprobe/vfs_read"
    with bcc(BCC_KPROBE, sec, "bcc_kprobe", READ_SIZE=READ_SIZE) as h:
        assert [a.point for a in h.attachments] == [f"vfs_read+{off:#x}" if off else "vfs_read"]
        read_twice(data_file)
        df = h["seen"].to_frame()
    assert set(df["value"]) == {READ_SIZE}, df
    base = kallsyms("vfs_read") + off
    for ip in df["key"]:
        # at the entry the probe may sit after an ENDBR64 (IBT kernels), and x86 reports ip after the int3
        assert ip - base in ((0, 1) if off else range(0, 6)), (hex(int(ip)), hex(base))


BCC_KRETPROBE = """
BPF_HASH(rets, s64, s64);   /* BPF_KRETPROBE's ret -> PT_REGS_RC */

int BPF_KRETPROBE(on_read_ret, long ret)
{
    if (bpf_get_current_pid_tgid() >> 32 != TARGET_PID)
        return 0;
    s64 key = ret, rc = PT_REGS_RC(ctx);
    rets.update(&key, &rc);
    return 0;
}
"""


def test_bcc_kretprobe_return_value(live, data_file):
    require("kretprobe")
    with bcc(BCC_KRETPROBE, "kretprobe/vfs_read", "bcc_kretprobe") as h:
        read_twice(data_file)
        rets = h["rets"].to_frame().set_index("key")["value"]
    assert rets.get(FILE_SIZE) == FILE_SIZE, rets


# --- ksyscall, kretsyscall ---------------------------------------------------------------------------------

SYSCALLS = HEAD + """
const volatile u32 target_pid = 0;
u64 closes, last_fd, getppids;
s64 last_ppid;

SEC("ksyscall/close")
int BPF_KSYSCALL(close_entry, int fd)
{
    if ((bpf_get_current_pid_tgid() >> 32) != target_pid || fd != BAD_FD)
        return 0;
    __sync_fetch_and_add(&closes, 1);
    last_fd = fd;
    return 0;
}

SEC("kretsyscall/getppid")
int BPF_KRETPROBE(getppid_exit, long ret)
{
    if ((bpf_get_current_pid_tgid() >> 32) != target_pid)
        return 0;
    __sync_fetch_and_add(&getppids, 1);
    last_ppid = ret;
    return 0;
}
""" + LICENSE


def close_bad_fd(times: int = 3) -> None:
    for _ in range(times):
        with pytest.raises(OSError) as info:
            os.close(BAD_FD)
        assert info.value.errno == errno.EBADF


def test_core_ksyscall_argument_and_kretsyscall_return(live):
    require("ksyscall")
    require("kretsyscall")
    with core(SYSCALLS.replace("BAD_FD", str(BAD_FD)), "syscalls", target_pid=os.getpid()) as h:
        close_bad_fd(3)
        ppids = {os.getppid() for _ in range(4)}
        g = h.globals
    assert (g["closes"], g["last_fd"]) == (3, BAD_FD), g  # the syscall's own argument, not the wrapper's regs
    assert g["getppids"] >= 4 and ppids == {g["last_ppid"]}, g


BCC_KSYSCALL = """
BPF_HASH(fds, u64, u64);    /* close()'s fd -> calls */

int on_close(struct pt_regs *ctx)
{
    if (bpf_get_current_pid_tgid() >> 32 != TARGET_PID)
        return 0;
    /* the kprobe sits on the syscall wrapper: the user's registers are behind its first argument */
    struct pt_regs *regs = PT_REGS_SYSCALL_CTX(ctx);
    u64 fd = 0;
    bpf_probe_read_kernel(&fd, sizeof(fd), &PT_REGS_PARM1_SYSCALL(regs));
    fds.increment(fd);
    return 0;
}
"""


def test_bcc_ksyscall_argument(live):
    require("ksyscall")
    with bcc(BCC_KSYSCALL, "ksyscall/close", "bcc_ksyscall") as h:
        close_bad_fd(3)
        fds = h["fds"].to_frame().set_index("key")["value"]
    assert fds.get(BAD_FD) == 3, fds


BCC_KRETSYSCALL = """
BPF_HASH(rets, s64, u64);   /* getppid()'s return -> calls */

int on_getppid_ret(struct pt_regs *ctx)
{
    if (bpf_get_current_pid_tgid() >> 32 != TARGET_PID)
        return 0;
    s64 ret = PT_REGS_RC(ctx);
    rets.increment(ret);
    return 0;
}
"""


def test_bcc_kretsyscall_return(live):
    require("kretsyscall")
    with bcc(BCC_KRETSYSCALL, "kretsyscall/getppid", "bcc_kretsys") as h:
        ppid = os.getppid()
        for _ in range(3):
            assert os.getppid() == ppid
        rets = h["rets"].to_frame().set_index("key")["value"]
    assert list(rets.index) == [ppid] and rets[ppid] >= 4, rets


# --- fentry, fexit ----------------------------------------------------------------------------------------------

FENTRY_FEXIT = HEAD + """
struct call { u64 count; s64 ret; u64 ino; u32 kind; char name[32]; };  /* kind 0: fentry, 1: fexit */
struct call *_call_btf __attribute__((unused));
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 16); } events SEC(".maps");
const volatile u64 target_ino = 0;

static void note(u32 kind, struct file *file, size_t count, ssize_t ret)
{
    struct call *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e)
        return;
    e->kind = kind;
    e->count = count;
    e->ret = ret;
    e->ino = file->f_inode->i_ino;                           /* plain loads: BTF-typed pointers */
    bpf_probe_read_kernel_str(e->name, sizeof(e->name), file->f_path.dentry->d_name.name);
    bpf_ringbuf_submit(e, 0);
}

SEC("fentry/vfs_read")
int BPF_PROG(read_entry, struct file *file, char *buf, size_t count)
{
    if (file->f_inode->i_ino == target_ino)
        note(0, file, count, 0);
    return 0;
}

SEC("fexit/vfs_read")
int BPF_PROG(read_exit, struct file *file, char *buf, size_t count, loff_t *pos, ssize_t ret)
{
    if (file->f_inode->i_ino == target_ino)
        note(1, file, count, ret);
    return 0;
}
""" + LICENSE


def test_core_fentry_fexit_arguments_fields_and_return(live, data_file):
    require("fentry")
    require("fexit")
    ino = os.stat(data_file).st_ino
    with core(FENTRY_FEXIT, "fentry_fexit", target_ino=ino) as h:
        assert read_twice(data_file) == [FILE_SIZE, 0]
        ev = h.events("events", duration=0.2)
    assert set(ev["name"]) == {data_file.name} and set(ev["ino"]) == {ino} and set(ev["count"]) == {READ_SIZE}
    assert ev["kind"].tolist() == [0, 1, 0, 1], ev             # each call: fentry, then fexit
    assert ev[ev["kind"] == 1]["ret"].tolist() == [FILE_SIZE, 0]  # fexit sees the arguments and the return


BCC_FENTRY = """
BPF_HASH(counts, u64, u64);     /* count argument -> calls */

int BPF_PROG(on_read, void *file, void *buf, u64 count)
{
    if (bpf_get_current_pid_tgid() >> 32 != TARGET_PID)
        return 0;
    counts.increment(count);
    return 0;
}
"""

BCC_FEXIT = """
BPF_HASH(rets, s64, u64);       /* return value of the reads asking for READ_SIZE -> calls */

int BPF_PROG(on_read_exit, void *file, void *buf, u64 count, void *pos, long ret)
{
    if (bpf_get_current_pid_tgid() >> 32 != TARGET_PID || count != READ_SIZE)
        return 0;
    s64 key = ret;
    rets.increment(key);
    return 0;
}
"""


def test_bcc_fentry_arguments(live, data_file):
    require("fentry")
    with bcc(BCC_FENTRY, "fentry/vfs_read", "bcc_fentry") as h:
        read_twice(data_file)
        counts = h["counts"].to_frame().set_index("key")["value"]
    assert counts.get(READ_SIZE) == 2, counts


def test_bcc_fexit_return_values(live, data_file):
    require("fexit")
    with bcc(BCC_FEXIT, "fexit/vfs_read", "bcc_fexit", READ_SIZE=READ_SIZE) as h:
        read_twice(data_file)
        rets = h["rets"].to_frame().set_index("key")["value"].to_dict()
    assert rets == {FILE_SIZE: 1, 0: 1}, rets


# --- fmod_ret, lsm: refuse one file of the test's own --------------------------------------------------------

DENY = HEAD + """
const volatile u64 target_ino = 0;
const volatile u32 target_pid = 0;
u64 denied, allowed;

SEC("HOOK")
int BPF_PROG(deny_one, struct file *file, int ret)
{
    /* no "if (ret != 0) return ret;": the trampoline stops at the first non-zero result, so ret is 0 here */
    if ((bpf_get_current_pid_tgid() >> 32) != target_pid)
        return 0;
    if (file->f_inode->i_ino == target_ino) {
        __sync_fetch_and_add(&denied, 1);
        return -ERRNO;          /* fmod_ret: skips security_file_open; lsm: the hook's verdict */
    }
    __sync_fetch_and_add(&allowed, 1);
    return 0;
}
""" + LICENSE

BCC_DENY = """
BPF_ARRAY(verdicts, u64, 2);    /* [0] denied, [1] allowed */

int BPF_PROG(deny_one, void *file, int ret)
{
    if (bpf_get_current_pid_tgid() >> 32 != TARGET_PID)
        return 0;
    /* offsets from this kernel's BTF (-D flags): BCC's headers need not be this kernel's */
    void *inode = 0;
    unsigned long ino = 0;
    bpf_probe_read_kernel(&inode, sizeof(inode), (char *)file + FILE_F_INODE);
    bpf_probe_read_kernel(&ino, sizeof(ino), (char *)inode + INODE_I_INO);
    int slot = ino == TARGET_INO ? 0 : 1;
    verdicts.increment(slot);
    return slot == 0 ? -ERRNO : 0;
}
"""


def deny_files(tmp_path) -> tuple[Path, Path]:
    refused, allowed = tmp_path / "refused", tmp_path / "allowed"
    refused.write_text("secret")
    allowed.write_text("public")
    return refused, allowed


def check_denied(refused: Path, allowed: Path, err: int) -> None:
    with pytest.raises(PermissionError) as info:
        open(refused)
    assert info.value.errno == err  # the program's -errno became open(2)'s error
    assert allowed.read_text() == "public"  # returning 0 lets the open go on


@pytest.mark.parametrize("family,hook,err", [("fmod_ret", "fmod_ret/security_file_open", errno.EPERM),
                                             ("lsm", "lsm/file_open", errno.EACCES)])
def test_core_deny_one_file(live, tmp_path, family, hook, err):
    require(family)
    if family == "lsm":
        bpf_lsm_active()
    refused, allowed = deny_files(tmp_path)
    cell = DENY.replace("HOOK", hook).replace("ERRNO", str(err))
    with core(cell, f"deny_{family}", target_ino=os.stat(refused).st_ino, target_pid=os.getpid()) as h:
        check_denied(refused, allowed, err)
        g = h.globals
    assert g["denied"] == 1 and g["allowed"] >= 1, g
    assert refused.read_text() == "secret"  # detached: the file opens again


@pytest.mark.parametrize("family,hook,err", [("fmod_ret", "fmod_ret/security_file_open", errno.EPERM),
                                             ("lsm", "lsm/file_open", errno.EACCES)])
def test_bcc_deny_one_file(live, tmp_path, family, hook, err):
    require(family)
    if family == "lsm":
        bpf_lsm_active()
    refused, allowed = deny_files(tmp_path)
    offsets = {"FILE_F_INODE": btf_offset("file", "f_inode"), "INODE_I_INO": btf_offset("inode", "i_ino")}
    with bcc(BCC_DENY, hook, f"bcc_deny_{family}", TARGET_INO=os.stat(refused).st_ino, ERRNO=err,
             **offsets) as h:
        check_denied(refused, allowed, err)
        verdicts = h["verdicts"].to_frame().set_index("key")["value"]
    assert verdicts[0] == 1 and verdicts[1] >= 1, verdicts
    assert refused.read_text() == "secret"
