"""Is this the full kernel the VM is for? Run first in the test VM (vm/guest-run.sh).

The full-kernel tests and chapters skip a family the lab finds missing, so a VM whose kernel
lost kprobes or BPF LSM would pass them all by skipping. These checks fail instead, and one
BCC kprobe proves that compiling, loading and attaching work in the guest.
Not part of `make test`: on the development kernel they fail by design.
"""
from __future__ import annotations

import os
import time

import pytest

FULL_KERNEL_FAMILIES = ("kprobe", "kretprobe", "ksyscall", "kretsyscall",
                        "fentry", "fexit", "fmod_ret", "lsm", "tp_btf")


def test_kernel_has_btf_and_kprobes():
    assert os.path.exists("/sys/kernel/btf/vmlinux"), "no BTF for vmlinux"
    assert os.path.exists("/sys/bus/event_source/devices/kprobe"), "no kprobe PMU"


def test_bpf_is_an_active_lsm():
    with open("/sys/kernel/security/lsm") as f:
        active = f.read().strip().split(",")
    assert "bpf" in active, f"bpf is not in the active LSMs {active}: lsm= lacks it (vm/provision.sh sets it)"


def test_lab_finds_every_full_kernel_family():
    from ebpf_magic.features import feature

    missing = {}
    for family in FULL_KERNEL_FAMILIES:
        f = feature(family)
        if f is not None and not f.available:
            missing[family] = f.reason
    assert not missing, f"ebpf_magic.features finds these missing in the VM: {missing}"


def test_bcc_kprobe_counts_getpid():
    if os.geteuid() != 0:
        pytest.fail("the VM runs the checks as root")
    from bcc import BPF

    # Names as bytes: BCC 0.26 warns about every str.
    b = BPF(text=rb"""
BPF_ARRAY(calls, u64, 1);
int on_getpid(struct pt_regs *ctx) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (pid != TARGET_PID)
        return 0;
    int zero = 0;
    u64 *n = calls.lookup(&zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    return 0;
}
""", cflags=[f"-DTARGET_PID={os.getpid()}"])
    try:
        b.attach_kprobe(event=b.get_syscall_fnname(b"getpid"), fn_name=b"on_getpid")
        for _ in range(50):
            os.getpid()   # a system call each time: glibc stopped caching the pid in 2.25
        deadline = time.monotonic() + 5
        while b[b"calls"][0].value < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b[b"calls"][0].value >= 50
    finally:
        b.cleanup()
