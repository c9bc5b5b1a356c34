"""uprobe, uretprobe and USDT probes in user-space binaries."""
from __future__ import annotations

import os
import shutil

from ..errors import AttachError
from . import libbpf_auto
from .base import Attachment, Request, bcc_call, need


def resolve_binary(binary: str) -> str:
    """libbpf accepts a path or a library/program name; BCC resolves names through ldconfig and PATH."""
    if os.sep in binary:
        if not os.path.exists(binary):
            raise AttachError(f"no such binary {binary}", hint="give an absolute path to an ELF file")
        return binary
    found = shutil.which(binary)
    return found or binary


def uprobe(req: Request) -> list[Attachment]:
    t = req.section.target
    if req.prog is not None:
        return libbpf_auto.attach(req, req.section.family, f"{t.binary}:{t.symbol or hex(t.offset or 0)}",
                                  hint=f"check the symbol: nm -D {t.binary} | grep {t.symbol or ''}")
    binary = resolve_binary(need(req, t.binary, "the binary and symbol", "uprobe//usr/bin/bash:readline"))
    pid = req.options.pid if req.options.pid is not None else -1
    b, name = req.bpf, req.fn.encode()
    where = f"{binary}:{t.symbol or hex(t.offset or 0)}"
    sym = (t.symbol or "").encode()
    addr = None if t.symbol else t.offset
    if req.section.family == "uretprobe":
        bcc_call(f"attaching {req.fn} to uretprobe {where}",
                 lambda: b.attach_uretprobe(name=binary.encode(), sym=sym, addr=addr, fn_name=name, pid=pid),
                 hint=f"check the symbol: nm -D {binary} | grep {t.symbol or ''}")
        return [Attachment("uretprobe", where,
                           lambda: b.detach_uretprobe(name=binary.encode(), sym=sym, addr=addr, pid=pid))]
    off = (t.offset or 0) if t.symbol else 0
    bcc_call(f"attaching {req.fn} to uprobe {where}",
             lambda: b.attach_uprobe(name=binary.encode(), sym=sym, addr=addr, fn_name=name, pid=pid,
                                     sym_off=off),
             hint=f"check the symbol: nm -D {binary} | grep {t.symbol or ''}")
    return [Attachment("uprobe", where,
                       lambda: b.detach_uprobe(name=binary.encode(), sym=sym, addr=addr, pid=pid, sym_off=off))]


def usdt_context(section, fn: str, pid: int | None):
    """USDT needs BCC to generate argument readers before compiling, so this runs first."""
    from bcc import USDT

    t = section.target
    binary = resolve_binary(t.binary or "")
    if not t.binary or not t.probe:
        raise AttachError(f"{section.name} does not name a probe",
                          hint="write it as usdt/BINARY:PROVIDER:NAME, e.g. usdt//usr/bin/python3:python:function__entry")
    try:
        ctx = USDT(pid=pid, path=binary) if pid else USDT(path=binary)
        ctx.enable_probe(probe=f"{t.provider}:{t.probe}" if t.provider else t.probe, fn_name=fn)
    except Exception as exc:
        raise AttachError(f"USDT probe {t.provider}:{t.probe} in {binary}: {exc}",
                          hint=f"list the probes: readelf -n {binary} | grep -A2 stapsdt") from None
    return ctx


def usdt(req: Request) -> list[Attachment]:
    if req.prog is not None:
        t = req.section.target
        return libbpf_auto.attach(req, "usdt", f"{t.binary}:{t.provider}:{t.probe}",
                                  hint=f"list the probes: readelf -n {t.binary} | grep -A2 stapsdt")
    # BCC attached the probe's uprobes while compiling; record and own them.
    b = req.bpf
    events = list(b.uprobe_fds)
    if not events:
        raise AttachError(f"no USDT location attached for {req.section.name}",
                          hint="check --pid: probes in shared libraries need the process")
    t = req.section.target

    def detach():
        for ev in events:
            if ev in b.uprobe_fds:
                b.detach_uprobe_event(ev)

    where = f"{len(events)} location" + ("s" if len(events) != 1 else "")
    return [Attachment("usdt", f"{t.binary}:{t.provider}:{t.probe} ({where})", detach)]
