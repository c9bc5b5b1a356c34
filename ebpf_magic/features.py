"""What this kernel can do, with the reason when it cannot.

Each answer comes from asking the kernel (load a two-instruction program,
open a perf event, look for the kprobe PMU), not from the kernel version:
a kernel may be new and still refuse a family, as the lab's CI kernel does.
"""
from __future__ import annotations

import ctypes as ct
import errno
import functools
import os
import platform
from dataclasses import dataclass

from . import libbpf
from .errors import KernelRefusedError
from .uapi import AttachType, ProgType

_RET0 = b"\xb7\x00\x00\x00\x00\x00\x00\x00" + b"\x95\x00\x00\x00\x00\x00\x00\x00"  # r0 = 0; exit
_PMU = "/sys/bus/event_source/devices"
TRACEFS = "/sys/kernel/tracing"


@dataclass(frozen=True)
class Feature:
    family: str
    available: bool
    reason: str

    def __bool__(self) -> bool:
        return self.available


def _ok(family: str, how: str) -> Feature:
    return Feature(family, True, how)


def _no(family: str, why: str) -> Feature:
    return Feature(family, False, why)


def _load_trivial(prog_type: ProgType, attach: AttachType | None = None, target: str | None = None) -> int:
    """0 if the kernel loads a return-0 program of this kind, else the errno."""
    so = libbpf.lib()
    opts = libbpf.ProgLoadOpts(sz=ct.sizeof(libbpf.ProgLoadOpts))
    if attach is not None:
        opts.expected_attach_type = int(attach)
    if target is not None:
        btf_id = so.libbpf_find_vmlinux_btf_id(target.encode(), int(attach))
        if btf_id < 0:
            return errno.ENOENT
        opts.attach_btf_id = btf_id
    fd = so.bpf_prog_load(int(prog_type), b"lab_probe", b"GPL", _RET0, 2, ct.byref(opts))
    if fd >= 0:
        os.close(fd)
        return 0
    return libbpf.errno_of(fd)


def _trampoline(family: str, prog_type: ProgType, attach: AttachType, targets: tuple[str, ...]) -> Feature:
    for target in targets:
        err = _load_trivial(prog_type, attach, target)
        if err == 0:
            return _ok(family, f"a {family} program on {target} loads")
        if err == errno.ENOENT:
            continue
        if err == errno.EPERM:
            return _no(family, f"EPERM before the verifier ran: this kernel refuses BPF trampoline programs "
                               f"({family}); run this chapter in the full-kernel VM")
        return _no(family, f"loading a {family} program failed: {libbpf.strerror(err)}")
    return _no(family, f"none of {', '.join(targets)} is in this kernel's BTF")


def _active_lsm(loads: Feature) -> Feature:
    """An lsm program that loads still never runs unless "bpf" is one of the kernel's active LSMs."""
    if not loads.available:
        return loads
    try:
        with open("/sys/kernel/security/lsm") as f:
            active = f.read().strip().split(",")
    except OSError:
        return loads  # securityfs not mounted: the load is all that can be known
    if "bpf" in active:
        return _ok("lsm", f"lsm programs load and bpf is an active LSM ({','.join(active)})")
    return _no("lsm", f"lsm programs load but bpf is not an active LSM ({','.join(active)}): "
                      "boot with lsm=...,bpf (the VM's provisioning does)")


def _kprobes(family: str) -> Feature:
    if os.path.exists(f"{_PMU}/kprobe") or os.path.exists(f"{TRACEFS}/kprobe_events"):
        return _ok(family, "kprobe PMU present")
    return _no(family, "kprobes are compiled out of this kernel (CONFIG_KPROBES / CONFIG_KPROBE_EVENTS: "
                       "no kprobe PMU, no kprobe_events in tracefs); use a tracepoint, or the full-kernel VM")


def _perf_event(config_type: int, config: int) -> int:
    from bcc import lib

    from .fdcapture import stderr_fd

    with stderr_fd():  # libbcc reports a failed perf_event_open on fd 2
        fd = lib.bpf_open_perf_event(config_type, config, -1, 0)
        err = ct.get_errno()
    if fd >= 0:
        os.close(fd)
        return 0
    return err or errno.EINVAL


def _probe_type(family: str, prog_type: ProgType) -> Feature:
    ret = libbpf.lib().libbpf_probe_bpf_prog_type(int(prog_type), None)
    if ret == 1:
        return _ok(family, f"BPF_PROG_TYPE_{prog_type.name} loads")
    if ret == 0:
        return _no(family, f"BPF_PROG_TYPE_{prog_type.name} is not supported by this kernel")
    return _no(family, f"probing BPF_PROG_TYPE_{prog_type.name} failed: {libbpf.strerror(-ret)}")


_PROBES = {
    "tracepoint": lambda: _ok("tracepoint", "tracefs events present") if os.path.isdir(f"{TRACEFS}/events")
    else _no("tracepoint", f"no {TRACEFS}/events: mount tracefs (make lab does)"),
    "raw_tracepoint": lambda: _probe_type("raw_tracepoint", ProgType.RAW_TRACEPOINT),
    "tp_btf": lambda: _trampoline("tp_btf", ProgType.TRACING, AttachType.TRACE_RAW_TP, ("sched_switch",)),
    "fentry": lambda: _trampoline("fentry", ProgType.TRACING, AttachType.TRACE_FENTRY,
                                  ("security_file_open", "do_sys_openat2", "vfs_read")),
    "fexit": lambda: _trampoline("fexit", ProgType.TRACING, AttachType.TRACE_FEXIT,
                                 ("security_file_open", "do_sys_openat2", "vfs_read")),
    "fmod_ret": lambda: _trampoline("fmod_ret", ProgType.TRACING, AttachType.MODIFY_RETURN,
                                    ("security_file_open",)),
    "lsm": lambda: _active_lsm(_trampoline("lsm", ProgType.LSM, AttachType.LSM_MAC, ("file_open",))),
    "iter": lambda: _trampoline("iter", ProgType.TRACING, AttachType.TRACE_ITER, ("task",)),
    "kprobe": lambda: _kprobes("kprobe"),
    "kretprobe": lambda: _kprobes("kretprobe"),
    "ksyscall": lambda: _kprobes("ksyscall"),
    "kretsyscall": lambda: _kprobes("kretsyscall"),
    "uprobe": lambda: _ok("uprobe", "uprobe PMU present") if os.path.exists(f"{_PMU}/uprobe")
    else _no("uprobe", "no uprobe PMU (CONFIG_UPROBE_EVENTS not set)"),
    "perf_event": lambda: _ok("perf_event", "software perf events open") if _perf_event(1, 0) == 0
    else _no("perf_event", "perf_event_open of a software event failed"),
    "perf_event_hw": lambda: _ok("perf_event_hw", "hardware PMU present") if _perf_event(0, 0) == 0
    else _no("perf_event_hw", "no hardware PMU (perf_event_open of cycles: ENOENT; virtualized CPU); "
                              "use software events such as cpu-clock"),
    "socket": lambda: _probe_type("socket", ProgType.SOCKET_FILTER),
    "xdp": lambda: _probe_type("xdp", ProgType.XDP),
    "tc": lambda: _probe_type("tc", ProgType.SCHED_CLS),
    "cgroup": lambda: _probe_type("cgroup", ProgType.CGROUP_SKB),
}
_PROBES["uretprobe"] = lambda: _rename(_PROBES["uprobe"](), "uretprobe")
_PROBES["usdt"] = lambda: _rename(_PROBES["uprobe"](), "usdt")


def _rename(f: Feature, family: str) -> Feature:
    return Feature(family, f.available, f.reason)


@functools.cache
def feature(family: str) -> Feature | None:
    """The kernel's answer for one family, or None where the lab has no probe for it."""
    probe = _PROBES.get(family)
    return probe() if probe else None


def refusal_reason(section) -> KernelRefusedError | None:
    """The lab's error for a SEC whose family this kernel refuses, else None."""
    family = section.family
    if family == "perf_event":
        return None  # software events work on every kernel; hardware ones are checked at attach
    f = feature(family)
    if f is None or f.available:
        return None
    return KernelRefusedError(f"{section.name}: {family} programs do not run on this kernel "
                              f"({platform.release()})", detail=f.reason,
                              hint="see %bpf_features; the full-kernel VM (vagrant up) runs every family")


def btf_present() -> bool:
    return os.path.exists("/sys/kernel/btf/vmlinux")


def headers() -> str:
    build = f"/lib/modules/{platform.release()}/build"
    if not os.path.exists(f"{build}/include"):
        return "missing: BCC cells cannot compile (run make lab)"
    target = os.path.realpath(build)
    if os.path.exists(f"/lib/modules/{platform.release()}/.ebpf-lab-foreign-headers"):
        return f"{os.path.basename(target)} (not this kernel's: struct layouts may differ)"
    return os.path.basename(target)


def bcc_version() -> str:
    try:
        import bcc
    except ImportError:
        return "missing (install python3-bpfcc)"
    return getattr(bcc, "__version__", "unknown")


def clang_version() -> str:
    import shutil
    import subprocess

    path = shutil.which("clang")
    if not path:
        return "missing: CO-RE cells cannot compile (install clang: make lab)"
    out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else path


def report():
    """This kernel's program types and tools, as a DataFrame (attrs hold the summary)."""
    import pandas as pd

    rows = [feature(f) for f in _PROBES]
    df = pd.DataFrame([{"family": r.family, "available": r.available, "reason": r.reason} for r in rows])
    df.attrs.update({
        "kernel": platform.release(),
        "btf": "yes (/sys/kernel/btf/vmlinux)" if btf_present() else "no: CO-RE cells cannot load",
        "headers": headers(),
        "bcc": bcc_version(),
        "libbpf": libbpf.version(),
        "clang": clang_version(),
        "root": os.geteuid() == 0,
    })
    return df
