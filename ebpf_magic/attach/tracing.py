"""Tracepoints, raw tracepoints and the BTF-typed families (tp_btf, fentry/fexit/fmod_ret, lsm, iter)."""
from __future__ import annotations

import ctypes as ct
import functools
import os

from .. import libbpf
from ..errors import AttachError
from ..features import TRACEFS
from ..uapi import AttachType
from .base import Attachment, Request, bcc_call, close_matches, fd_link, need


@functools.cache
def available_events() -> tuple[str, ...]:
    try:
        with open(f"{TRACEFS}/available_events") as f:
            return tuple(line.strip() for line in f if line.strip())
    except OSError:
        return ()


def tracepoint(req: Request) -> list[Attachment]:
    t = req.section.target
    cat = need(req, t.category, "the tracepoint", "tracepoint/syscalls/sys_enter_openat")
    event = need(req, t.event, "the tracepoint", "tracepoint/syscalls/sys_enter_openat")
    tp = f"{cat}:{event}"
    if not os.path.isdir(f"{TRACEFS}/events/{cat}/{event}"):
        raise AttachError(f"no tracepoint {tp} in {TRACEFS}/events",
                          hint=_suggest(tp, available_events(), "tracepoint/{cat}/{event}"))
    bcc_call(f"attaching {req.fn} to tracepoint {tp}",
             lambda: req.bpf.attach_tracepoint(tp=tp.encode(), fn_name=req.fn.encode()),
             hint="check the tracepoint's format file and the program's context type")
    return [Attachment("tracepoint", tp, lambda: req.bpf.detach_tracepoint(tp.encode()))]


def raw_tracepoint(req: Request) -> list[Attachment]:
    event = need(req, req.section.target.event, "the tracepoint", "raw_tp/sched_switch")
    # syscalls:* are perf-only events built on raw_syscalls:sys_enter/exit, not raw tracepoints.
    names = {e.split(":", 1)[1] for e in available_events() if not e.startswith("syscalls:")}
    if names and event not in names:
        raise AttachError(f"no tracepoint named {event}", hint=_suggest(event, names, "raw_tp/{name}"))
    bcc_call(f"attaching {req.fn} to raw tracepoint {event}",
             lambda: req.bpf.attach_raw_tracepoint(tp=event.encode(), fn_name=req.fn.encode()),
             hint="raw tracepoints take struct bpf_raw_tracepoint_args *ctx")
    return [Attachment("raw_tracepoint", event, lambda: req.bpf.detach_raw_tracepoint(event.encode()))]


def _suggest(word: str, choices, template: str) -> str:
    matches = close_matches(word, choices)
    if not matches:
        return f"list them with: grep {word.split(':')[-1][:6]} {TRACEFS}/available_events"
    shown = [template.format(cat=m.split(":")[0], event=m.split(":")[-1], name=m) for m in matches]
    return "did you mean " + ", ".join(shown) + "?"


# --- BTF-typed families: the kernel needs the BTF id of the target at load time.

_BTF_TARGET = {
    "tp_btf": ("event", "btf_trace_{}", "tp_btf/sched_switch"),
    "fentry": ("function", "{}", "fentry/do_unlinkat"),
    "fexit": ("function", "{}", "fexit/do_unlinkat"),
    "fmod_ret": ("function", "{}", "fmod_ret/security_file_open"),
    "lsm": ("function", "bpf_lsm_{}", "lsm/file_open"),
    "iter": ("event", "bpf_iter_{}", "iter/task"),
}


def btf_id(section) -> int:
    """The vmlinux BTF id that a TRACING/LSM program names at load time."""
    field, spelled, example = _BTF_TARGET[section.family]
    name = getattr(section.target, field)
    if not name:
        raise AttachError(f"{section.name} does not say which kernel {field} to attach to",
                          hint=f"write it in the SEC name, e.g. %%bpf {example}")
    found = libbpf.lib().libbpf_find_vmlinux_btf_id(name.encode(), int(section.attach_type))
    if found < 0:
        raise AttachError(f"{spelled.format(name)} is not in this kernel's BTF (/sys/kernel/btf/vmlinux)",
                          hint=f"list candidates: bpftool btf dump file /sys/kernel/btf/vmlinux | "
                               f"grep {spelled.format(name)[:12]}")
    return found


def btf_link(req: Request) -> list[Attachment]:
    """tp_btf, fentry, fexit, fmod_ret and lsm all attach through a raw-tracepoint link."""
    field = _BTF_TARGET[req.section.family][0]
    point = getattr(req.section.target, field)
    link = libbpf.lib().bpf_raw_tracepoint_open(None, req.fd)
    if link < 0:
        err = libbpf.errno_of(link)
        raise AttachError(f"attaching {req.fn} ({req.section.family}) to {point}: {libbpf.strerror(err)}",
                          hint="check %bpf_features for this family")
    return [fd_link(req.section.family, point, link)]


def iterator(req: Request) -> list[Attachment]:
    opts = libbpf.LinkCreateOpts(sz=ct.sizeof(libbpf.LinkCreateOpts))
    link = libbpf.lib().bpf_link_create(req.fd, 0, int(AttachType.TRACE_ITER), ct.byref(opts))
    if link < 0:
        raise AttachError(f"creating the iterator link for {req.fn}: {libbpf.strerror(libbpf.errno_of(link))}",
                          hint="iter programs take struct bpf_iter__<name> *ctx (BCC: BPF_ITER(name))")
    return [fd_link("iter", req.section.target.event, link)]


def read_iterator(link_fd: int, limit: int = 16 << 20) -> str:
    """Run an iterator once: every read() of a new iterator fd runs the program over the objects."""
    fd = libbpf.lib().bpf_iter_create(link_fd)
    if fd < 0:
        raise AttachError(f"bpf_iter_create: {libbpf.strerror(libbpf.errno_of(fd))}")
    chunks, total = [], 0
    try:
        while total < limit:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")
