"""One small attacher per family; ``attach()`` picks it from the resolved SEC."""
from __future__ import annotations

from ..errors import AttachError
from . import kprobes, perf, tracing, uprobes
from .base import Attachment, Options, Request

ATTACHERS = {
    "tracepoint": tracing.tracepoint,
    "raw_tracepoint": tracing.raw_tracepoint,
    "raw_tracepoint_w": tracing.raw_tracepoint,
    "tp_btf": tracing.btf_link,
    "fentry": tracing.btf_link,
    "fexit": tracing.btf_link,
    "fmod_ret": tracing.btf_link,
    "lsm": tracing.btf_link,
    "iter": tracing.iterator,
    "kprobe": kprobes.kprobe,
    "kretprobe": kprobes.kprobe,
    "ksyscall": kprobes.ksyscall,
    "kretsyscall": kprobes.ksyscall,
    "uprobe": uprobes.uprobe,
    "uretprobe": uprobes.uprobe,
    "usdt": uprobes.usdt,
    "perf_event": perf.perf_event,
}

__all__ = ["ATTACHERS", "Attachment", "Options", "Request", "attach", "btf_id"]


def btf_id(section) -> int | None:
    """The BTF id the kernel wants at load time, for families that attach by BTF."""
    return tracing.btf_id(section) if section.family in tracing._BTF_TARGET else None


def attach(req: Request) -> list[Attachment]:
    fn = ATTACHERS.get(req.section.family)
    if fn is None:
        raise AttachError(f"the BCC engine does not attach {req.section.family} programs yet "
                          f"({req.section.name})",
                          hint="families attached here: " + ", ".join(sorted(ATTACHERS)))
    return fn(req)
