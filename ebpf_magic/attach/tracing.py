"""Tracepoints, raw tracepoints and the BTF-typed families (tp_btf, fentry/fexit/fmod_ret, lsm, iter)."""
from __future__ import annotations

import ctypes as ct
import errno
import functools
import os
import re

from .. import libbpf
from ..errors import AttachError
from ..families import family
from ..features import TRACEFS
from ..uapi import AttachType
from .base import Attachment, Request, close_matches, fd_link, need


@functools.cache
def available_events() -> tuple[str, ...]:
    try:
        with open(f"{TRACEFS}/available_events") as f:
            return tuple(line.strip() for line in f if line.strip())
    except OSError:
        return ()


def tracepoint(req: Request) -> list[Attachment]:
    """A perf event of the tracepoint, linked to the program: the same for both engines."""
    from . import perf

    t = req.section.target
    cat = need(req, t.category, "the tracepoint", "tracepoint/syscalls/sys_enter_openat")
    event = need(req, t.event, "the tracepoint", "tracepoint/syscalls/sys_enter_openat")
    tp = f"{cat}:{event}"
    try:
        with open(f"{TRACEFS}/events/{cat}/{event}/id") as f:
            tp_id = int(f.read())
    except FileNotFoundError:
        raise AttachError(f"no tracepoint {tp} in {TRACEFS}/events",
                          hint=_suggest(tp, available_events(), "tracepoint/{cat}/{event}")) from None
    except OSError as exc:
        raise AttachError(f"cannot read tracepoint {tp}: {exc.strerror}",
                          hint="mount tracefs on /sys/kernel/tracing (make lab does)") from None
    try:
        # cpu 0 with pid -1: a tracepoint's program runs on every CPU whichever CPU the event names.
        fds = perf.attach_events(req.fd, [(perf.TYPE_TRACEPOINT, tp_id, 0)])
    except OSError as exc:
        size = _record_size(cat, event) if exc.errno == errno.EACCES else None
        if size is not None:
            raise AttachError(
                f"attaching {req.fn} to tracepoint {tp}: the program reads its context past the event's record",
                cause="tracepoint_past_record",
                explanation=f"the verifier accepted the program, but at attach the kernel compares the furthest "
                            f"context offset it reads with the record's size ({size} bytes for {tp}) and refuses "
                            f"(EACCES) a program that reads further",
                hint=f"read only the fields listed in {TRACEFS}/events/{cat}/{event}/format (a syscall's "
                     f"args[] has one entry per argument it takes)") from None
        raise AttachError(f"attaching {req.fn} to tracepoint {tp}: {libbpf.strerror(exc.errno)}",
                          hint="tracepoint programs take the event's record (struct trace_event_raw_*)") from None
    return [Attachment("tracepoint", tp, perf.tracepoint_closer(fds, perf.prog_id(req.fd)))]


def _record_size(cat: str, event: str) -> int | None:
    """The record's size as the kernel checks it at attach: where its last field ends."""
    try:
        with open(f"{TRACEFS}/events/{cat}/{event}/format") as f:
            fields = re.findall(r"offset:(\d+);\s*size:(\d+);", f.read())
    except OSError:
        return None
    return max((int(off) + int(size) for off, size in fields), default=None)


def raw_tracepoint(req: Request) -> list[Attachment]:
    event = need(req, req.section.target.event, "the tracepoint", "raw_tp/sched_switch")
    # syscalls:* are perf-only events built on raw_syscalls:sys_enter/exit, not raw tracepoints.
    names = {e.split(":", 1)[1] for e in available_events() if not e.startswith("syscalls:")}
    if names and event not in names:
        raise AttachError(f"no tracepoint named {event}", hint=_suggest(event, names, "raw_tp/{name}"))
    fd = libbpf.lib().bpf_raw_tracepoint_open(event.encode(), req.fd)
    if fd < 0:
        raise AttachError(f"attaching {req.fn} to raw tracepoint {event}: "
                          f"{libbpf.strerror(libbpf.errno_of(fd))}",
                          hint="raw tracepoints take struct bpf_raw_tracepoint_args *ctx")
    return [fd_link("raw_tracepoint", event, fd)]


def _suggest(word: str, choices, template: str) -> str:
    listing = f"list them: grep {word.split(':')[-1][:6]} {TRACEFS}/available_events"
    matches = close_matches(word, choices)
    if not matches:
        return listing
    shown = [template.format(cat=m.split(":")[0], event=m.split(":")[-1], name=m) for m in matches]
    return "did you mean " + ", ".join(shown) + "? " + listing


# --- BTF-typed families: the kernel needs the BTF id of the target at load time.

def btf_id(section) -> int:
    """The vmlinux BTF id that a TRACING/LSM program names at load time."""
    fam = family(section.family)
    name = getattr(section.target, fam.btf.field)
    if not name:
        raise AttachError(f"{section.name} does not say which kernel {fam.btf.field} to attach to",
                          hint=f"write it in the SEC name, e.g. %%bpf {fam.example}")
    spelled = fam.btf.spelled.format(name)
    found = libbpf.lib().libbpf_find_vmlinux_btf_id(name.encode(), int(section.attach_type))
    if found < 0:
        raise AttachError(f"{spelled} is not in this kernel's BTF (/sys/kernel/btf/vmlinux)",
                          hint=f"list candidates: bpftool btf dump file /sys/kernel/btf/vmlinux | "
                               f"grep {spelled[:12]}")
    return found


def btf_link(req: Request) -> list[Attachment]:
    """tp_btf, fentry, fexit, fmod_ret and lsm all attach through a raw-tracepoint link."""
    point = getattr(req.section.target, family(req.section.family).btf.field)
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
