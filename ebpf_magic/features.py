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
from .families import FAMILIES, Probe
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
    from .attach.perf import perf_event_open

    try:
        os.close(perf_event_open(config_type, config, pid=0, cpu=-1))
    except OSError as exc:
        return exc.errno or errno.EINVAL
    return 0


def _probe_type(family: str, prog_type: ProgType) -> Feature:
    ret = libbpf.lib().libbpf_probe_bpf_prog_type(int(prog_type), None)
    if ret == 1:
        return _ok(family, f"BPF_PROG_TYPE_{prog_type.name} loads")
    if ret == 0:
        return _no(family, f"BPF_PROG_TYPE_{prog_type.name} is not supported by this kernel")
    return _no(family, f"probing BPF_PROG_TYPE_{prog_type.name} failed: {libbpf.strerror(-ret)}")


def _tracefs(family: str) -> Feature:
    if os.path.isdir(f"{TRACEFS}/events"):
        return _ok(family, "tracefs events present")
    return _no(family, f"no {TRACEFS}/events: mount tracefs (make lab does)")


def _uprobes(family: str) -> Feature:
    if os.path.exists(f"{_PMU}/uprobe"):
        return _ok(family, "uprobe PMU present")
    return _no(family, "no uprobe PMU (CONFIG_UPROBE_EVENTS not set)")


def _software_events(family: str) -> Feature:
    if _perf_event(1, 0) == 0:
        return _ok(family, "software perf events open")
    return _no(family, "perf_event_open of a software event failed")


def _hardware_events(family: str) -> Feature:
    if _perf_event(0, 0) == 0:
        return _ok(family, "hardware PMU present")
    return _no(family, "no hardware PMU (perf_event_open of cycles: ENOENT; virtualized CPU); "
                       "use software events such as cpu-clock")


def _kprobe_multi(family: str) -> Feature:
    # kprobe.multi links need fprobe (CONFIG_FPROBE), which nothing in sysfs shows; kprobes first.
    f = _kprobes(family)
    return f if not f.available else _ok(family, "kprobe PMU present (kprobe.multi also needs CONFIG_FPROBE)")


def _run_probe(family: str, probe) -> Feature:
    kind, args = probe.kind, probe.args
    if kind == "prog_type":
        return _probe_type(family, ProgType[args[0]])
    if kind in ("trampoline", "lsm"):
        prog_type, attach, targets = args
        loads = _trampoline(family, ProgType[prog_type], AttachType[attach], targets)
        return _active_lsm(loads) if kind == "lsm" else loads
    simple = {"tracefs": _tracefs, "uprobe_pmu": _uprobes, "kprobe_pmu": _kprobes, "perf_sw": _software_events,
              "perf_hw": _hardware_events, "kprobe_multi": _kprobe_multi}
    return simple[kind](family)


# Not a family of its own (perf_event programs sample both), but a different answer.
_EXTRA = {"perf_event_hw": Probe("perf_hw")}


def _probes() -> dict[str, Probe]:
    return {**{f.name: f.probe for f in FAMILIES if f.probe is not None}, **_EXTRA}


@functools.cache
def feature(family: str) -> Feature | None:
    """The kernel's answer for one family, or None where the lab has no probe for it."""
    probe = _probes().get(family)
    return _run_probe(family, probe) if probe else None


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
    from .core import toolchain

    try:
        path, version = toolchain.clang()
    except Exception as exc:  # a missing clang is a line of the report, not a failure of it
        return str(exc).splitlines()[0]
    return f"{version} ({path})"


def bpftool_version() -> str:
    import shutil
    import subprocess

    path = shutil.which("bpftool")
    if not path:
        return "missing: CO-RE cells need it for vmlinux.h (make lab installs it)"
    out = subprocess.run([path, "version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else path


def report():
    """This kernel's program types and tools, as a DataFrame (attrs hold the summary)."""
    import pandas as pd

    rows = [feature(f) for f in _probes()]
    df = pd.DataFrame([{"family": r.family, "available": r.available, "reason": r.reason} for r in rows])
    df.attrs.update({
        "kernel": platform.release(),
        "btf": "yes (/sys/kernel/btf/vmlinux)" if btf_present() else "no: CO-RE cells cannot load",
        "headers": headers(),
        "bcc": bcc_version(),
        "libbpf": libbpf.version(),
        "bpftool": bpftool_version(),
        "clang": clang_version(),
        "root": os.geteuid() == 0,
    })
    return df
