"""kprobe, kretprobe, ksyscall and kretsyscall through BCC's perf-event kprobes."""
from __future__ import annotations

from ..errors import AttachError, KernelRefusedError
from ..features import feature
from . import libbpf_auto
from .base import Attachment, Request, bcc_call, need
from .targets import require_kernel_function


def _require(req: Request) -> None:
    f = feature(req.section.family)
    if f is not None and not f.available:
        raise KernelRefusedError(f"{req.section.name}: {req.section.family} programs cannot attach here",
                                 detail=f.reason, hint="see %bpf_features; the full-kernel VM has kprobes")


def kprobe(req: Request) -> list[Attachment]:
    _require(req)
    t = req.section.target
    fn = need(req, t.function, "the kernel function", "kprobe/do_unlinkat")
    try:
        return _attach_kprobe(req, fn, t.offset or 0)
    except AttachError:
        require_kernel_function(fn)  # reading kallsyms takes a while: only once the kernel said no
        raise


def _attach_kprobe(req: Request, fn: str, off: int) -> list[Attachment]:
    if req.prog is not None:
        return libbpf_auto.attach(req, req.section.family, fn,
                                  hint=f"check that {fn} is in /proc/kallsyms and not inlined or notrace")
    b, name = req.bpf, req.fn.encode()
    if req.section.family == "kretprobe":
        bcc_call(f"attaching {req.fn} to kretprobe {fn}",
                 lambda: b.attach_kretprobe(event=fn.encode(), fn_name=name),
                 hint=f"check that {fn} is in /proc/kallsyms and not inlined or notrace")
        return [Attachment("kretprobe", fn, lambda: b.detach_kretprobe(fn.encode()))]
    bcc_call(f"attaching {req.fn} to kprobe {fn}+{off:#x}",
             lambda: b.attach_kprobe(event=fn.encode(), event_off=off, fn_name=name),
             hint=f"check that {fn} is in /proc/kallsyms and not inlined or notrace")
    return [Attachment("kprobe", f"{fn}+{off:#x}" if off else fn, lambda: b.detach_kprobe(fn.encode()))]


def ksyscall(req: Request) -> list[Attachment]:
    _require(req)
    sc = need(req, req.section.target.syscall, "the syscall", "ksyscall/openat")
    if req.prog is not None:
        return libbpf_auto.attach(req, req.section.family, sc, hint="check the syscall's name")
    b, name = req.bpf, req.fn.encode()
    event = b.get_syscall_fnname(sc.encode())
    if req.section.family == "kretsyscall":
        bcc_call(f"attaching {req.fn} to the return of syscall {sc}",
                 lambda: b.attach_kretprobe(event=event, fn_name=name), hint="check the syscall's name")
        return [Attachment("kretsyscall", sc, lambda: b.detach_kretprobe(event))]
    bcc_call(f"attaching {req.fn} to syscall {sc}",
             lambda: b.attach_kprobe(event=event, fn_name=name), hint="check the syscall's name")
    return [Attachment("ksyscall", sc, lambda: b.detach_kprobe(event))]
