"""uprobe, uretprobe and USDT probes in user-space binaries.

Both engines attach to the file that ``targets.resolve_binary`` finds, after
the process, binary and symbol have been checked, so a SEC name means the
same thing, and fails with the same message, in a BCC and in a CO-RE cell.
CO-RE programs attach through bpf_program__attach_uprobe_opts/_usdt rather
than libbpf's auto-attach: that is what honours --pid and the names libbpf
would not find by itself (``libc``, ``c``).
"""
from __future__ import annotations

import ctypes as ct
import errno

from .. import libbpf
from ..errors import AttachError
from .base import Attachment, Request, bcc_call
from .targets import require_process, require_symbol, resolve_binary


def _binary(section, example: str) -> str:
    t = section.target
    if t.problem:
        raise AttachError(f"{section.name}: {t.problem}", hint=f"e.g. %%bpf {example}")
    if not t.binary:
        raise AttachError(f"{section.name} does not say which binary to probe", hint=f"e.g. %%bpf {example}")
    return resolve_binary(t.binary).path


def _symbol_hint(binary: str, symbol: str | None) -> str:
    return f"list the functions: nm -D --defined-only {binary}" + (f" | grep {symbol}" if symbol else "")


def uprobe(req: Request) -> list[Attachment]:
    t = req.section.target
    pid = req.options.pid
    require_process(pid)
    binary = _binary(req.section, "uprobe/libc.so.6:malloc")
    retprobe = req.section.family == "uretprobe"
    where = f"{binary}:{t.symbol or hex(t.offset or 0)}"
    if req.prog is not None:
        return [_core_uprobe(req, binary, retprobe, where)]
    b, name, sym = req.bpf, req.fn.encode(), (t.symbol or "").encode()
    path, bcc_pid = binary.encode(), pid if pid is not None else -1
    addr = None if t.symbol else t.offset
    hint = _symbol_hint(binary, t.symbol)
    if retprobe:
        _bcc_attach(f"attaching {req.fn} to uretprobe {where}", pid, binary, t.symbol, hint,
                    lambda: b.attach_uretprobe(name=path, sym=sym, addr=addr, fn_name=name, pid=bcc_pid))
        return [Attachment("uretprobe", where,
                           lambda: b.detach_uretprobe(name=path, sym=sym, addr=addr, pid=bcc_pid))]
    off = (t.offset or 0) if t.symbol else 0
    _bcc_attach(f"attaching {req.fn} to uprobe {where}", pid, binary, t.symbol, hint,
                lambda: b.attach_uprobe(name=path, sym=sym, addr=addr, fn_name=name, pid=bcc_pid, sym_off=off))
    return [Attachment("uprobe", where,
                       lambda: b.detach_uprobe(name=path, sym=sym, addr=addr, pid=bcc_pid, sym_off=off))]


def _bcc_attach(what: str, pid: int | None, binary: str, symbol: str | None, hint: str, call) -> None:
    try:
        bcc_call(what, call, hint=hint)
    except AttachError:
        _diagnose(pid, binary, symbol)
        raise


def _diagnose(pid: int | None, binary: str, symbol: str | None) -> None:
    """After a failed attach, name what is missing; reading the symbol tables costs a second, so only now."""
    require_process(pid)  # BCC blames the symbol when the process has left meanwhile
    if symbol:
        require_symbol(binary, symbol)


def _core_uprobe(req: Request, binary: str, retprobe: bool, point: str) -> Attachment:
    t = req.section.target
    opts = libbpf.UprobeOpts(sz=ct.sizeof(libbpf.UprobeOpts), retprobe=retprobe,
                             func_name=t.symbol.encode() if t.symbol else None)
    kind = "uretprobe" if retprobe else "uprobe"
    pid = req.options.pid if req.options.pid is not None else -1
    return _core_link(req, kind, point, _symbol_hint(binary, t.symbol), binary, t.symbol,
                      lambda so: so.bpf_program__attach_uprobe_opts(req.prog, pid, binary.encode(),
                                                                   t.offset or 0, ct.byref(opts)))


def _core_link(req: Request, kind: str, point: str, hint: str, binary: str, symbol: str | None,
               call) -> Attachment:
    from ..core import logs

    so = libbpf.lib()
    with logs.capture() as msgs:
        link = call(so)
    if not link:
        err = ct.get_errno() or 22
        _diagnose(req.options.pid, binary, symbol)
        if err == errno.EINVAL and kind != "usdt":
            hint = ("another uprobe on this function may carry a different USDT semaphore offset "
                    "(dmesg says \"ref_ctr_offset mismatch\"): detach it first; " + hint)
        raise AttachError(f"attaching {req.fn} (SEC \"{req.section.name}\"): {libbpf.strerror(err)}",
                          detail="".join(msgs[-4:]).strip() or None, hint=hint)
    return Attachment(kind, point, lambda: so.bpf_link__destroy(link), fd=so.bpf_link__fd(link))


def usdt_context(section, fn: str, pid: int | None):
    """USDT needs BCC to generate argument readers before compiling, so this runs first."""
    from ..bcc_engine import bcc_module

    USDT = bcc_module().USDT  # with libbcc's uprobe call declared whole: BCC attaches while compiling
    t = section.target
    example = "usdt//usr/bin/python3:python:function__entry"
    require_process(pid)
    binary = _binary(section, example)
    if not t.probe:
        raise AttachError(f"{section.name} does not name a probe",
                          hint=f"write it as usdt/BINARY:PROVIDER:NAME, e.g. {example}")
    try:
        ctx = USDT(pid=pid, path=binary) if pid else USDT(path=binary)
        ctx.enable_probe(probe=f"{t.provider}:{t.probe}" if t.provider else t.probe, fn_name=fn)
    except Exception as exc:
        require_process(pid)
        raise AttachError(f"USDT probe {t.provider}:{t.probe} in {binary}: {exc}",
                          hint=f"list the probes: readelf -n {binary} | grep -A2 stapsdt") from None
    return ctx


def usdt(req: Request) -> list[Attachment]:
    t = req.section.target
    if req.prog is not None:
        require_process(req.options.pid)
        binary = _binary(req.section, "usdt//usr/bin/python3:python:function__entry")
        pid = req.options.pid if req.options.pid is not None else -1
        t = req.section.target
        return [_core_link(req, "usdt", f"{binary}:{t.provider}:{t.probe}",
                           f"list the probes: readelf -n {binary} | grep -A2 stapsdt", binary, None,
                           lambda so: so.bpf_program__attach_usdt(req.prog, pid, binary.encode(),
                                                                  t.provider.encode(), t.probe.encode(), None))]
    # BCC attached the probe's uprobes while compiling; record and own them.
    b = req.bpf
    events = list(b.uprobe_fds)
    if not events:
        raise AttachError(f"no USDT location attached for {req.section.name}",
                          hint="check --pid: probes in shared libraries need the process")

    def detach():
        for ev in events:
            if ev in b.uprobe_fds:
                b.detach_uprobe_event(ev)

    where = f"{len(events)} location" + ("s" if len(events) != 1 else "")
    return [Attachment("usdt", f"{t.binary}:{t.provider}:{t.probe} ({where})", detach)]
