"""perf_event programs, and the perf events that tracepoints attach through.

Both engines attach the same way: ``perf_event_open(2)`` for the event, then
a BPF link on it (``BPF_LINK_CREATE`` with ``BPF_PERF_EVENT``), so closing the
link and the event's fd detaches and a dead process leaves nothing behind.
"""
from __future__ import annotations

import ctypes as ct
import fcntl
import os
import threading
import time

from .. import libbpf
from ..errors import AttachError, KernelRefusedError
from ..uapi import AttachType
from .base import Attachment, Request

_SOFTWARE = {"cpu-clock": 0, "task-clock": 1, "page-faults": 2, "context-switches": 3,
             "cpu-migrations": 4, "minor-faults": 5, "major-faults": 6, "alignment-faults": 7,
             "emulation-faults": 8}
_HARDWARE = {"cycles": 0, "instructions": 1, "cache-references": 2, "cache-misses": 3,
             "branches": 4, "branch-misses": 5, "bus-cycles": 6, "ref-cycles": 9}
EVENTS = [*_SOFTWARE, *_HARDWARE]
DEFAULT_EVENT, DEFAULT_FREQ = "cpu-clock", 99
TYPE_HARDWARE, TYPE_SOFTWARE, TYPE_TRACEPOINT = 0, 1, 2

_NR_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "riscv64": 241, "s390x": 331, "ppc64le": 319}
_FREQ_BIT = 1 << 10
_PERF_FLAG_FD_CLOEXEC = 1 << 3
_libc = ct.CDLL(None, use_errno=True)


class PerfEventAttr(ct.Structure):
    """struct perf_event_attr up to sample_max_stack (PERF_ATTR_SIZE_VER5, 112 bytes)."""

    _fields_ = [
        ("type", ct.c_uint32), ("size", ct.c_uint32), ("config", ct.c_uint64),
        ("sample_period_or_freq", ct.c_uint64), ("sample_type", ct.c_uint64), ("read_format", ct.c_uint64),
        ("flags", ct.c_uint64), ("wakeup_events", ct.c_uint32), ("bp_type", ct.c_uint32),
        ("config1", ct.c_uint64), ("config2", ct.c_uint64), ("branch_sample_type", ct.c_uint64),
        ("sample_regs_user", ct.c_uint64), ("sample_stack_user", ct.c_uint32), ("clockid", ct.c_int32),
        ("sample_regs_intr", ct.c_uint64), ("aux_watermark", ct.c_uint32), ("sample_max_stack", ct.c_uint16),
        ("_reserved", ct.c_uint16),
    ]


def perf_event_open(ev_type: int, config: int, *, pid: int = -1, cpu: int = 0, period: int = 0,
                    freq: int = 0, sample_type: int = 0) -> int:
    """An event fd, or raises OSError with the kernel's errno."""
    import platform

    attr = PerfEventAttr(type=ev_type, size=ct.sizeof(PerfEventAttr), config=config, wakeup_events=1,
                          sample_type=sample_type)
    attr.sample_period_or_freq = freq or period or 1
    if freq:
        attr.flags |= _FREQ_BIT
    nr = _NR_PERF_EVENT_OPEN.get(platform.machine())
    if nr is None:
        raise OSError(0, f"perf_event_open: no syscall number known for {platform.machine()}")
    fd = _libc.syscall(nr, ct.byref(attr), pid, cpu, -1, _PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        err = ct.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def link(prog_fd: int, event_fd: int) -> int:
    """A BPF link running the program on the event; raises OSError."""
    opts = libbpf.LinkCreateOpts(sz=ct.sizeof(libbpf.LinkCreateOpts))
    fd = libbpf.lib().bpf_link_create(prog_fd, event_fd, int(AttachType.PERF_EVENT), ct.byref(opts))
    if fd < 0:
        err = libbpf.errno_of(fd)
        raise OSError(err, os.strerror(err))
    return fd


def _closer(fds: list[int]):
    """Detach: the links now, the events' fds on a background thread (``attach_events`` pairs them).

    Closing a link takes the program off its event at once (the kernel swaps the
    event's program array). Closing the last perf event of a tracepoint then
    waits in the kernel for RCU grace periods (``tracepoint_synchronize_unregister``),
    tens of milliseconds on a busy machine with nothing left to run, so the
    learner does not wait for it.
    """
    def close():
        events, links = fds[0::2], fds[1::2]
        fds.clear()
        for fd in reversed(links):
            os.close(fd)
        _close_later(events)
    return close


# PERF_EVENT_IOC_QUERY_BPF: _IOWR('$', 10, struct perf_event_query_bpf *)
_IOC_QUERY_BPF = 0xC008240A
_QUERY_SLOTS = 64  # BPF_TRACE_MAX_PROGS


def _tracepoint_programs(event_fd: int) -> list[int] | None:
    """Ids of the programs the event's tracepoint runs now; None if the kernel will not say."""
    query = (ct.c_uint32 * (2 + _QUERY_SLOTS))(_QUERY_SLOTS)
    try:
        fcntl.ioctl(event_fd, _IOC_QUERY_BPF, query)
    except OSError:
        return None
    return list(query[2:2 + min(query[1], _QUERY_SLOTS)])


def prog_id(prog_fd: int) -> int | None:
    try:
        with open(f"/proc/self/fdinfo/{prog_fd}") as f:
            return next((int(ln.split()[1]) for ln in f if ln.startswith("prog_id:")), None)
    except OSError:
        return None


def tracepoint_closer(fds: list[int], prog: int | None):
    """Detach a tracepoint's program as soon as the tracepoint stops running it, not a grace period later.

    Since the 2024 fix for mismatched RCU flavours (kernel commit ef1b808e3b7c), closing
    the link waits for an RCU tasks-trace grace period (``perf_event_detach_bpf_prog``),
    and closing the tracepoint's last perf event for more
    (``tracepoint_synchronize_unregister``): tens of milliseconds on a busy machine.
    The kernel takes the program out of the tracepoint's program array first,
    under a mutex, so a thread closes both while this one asks the event
    (``PERF_EVENT_IOC_QUERY_BPF``) until the program is gone from the array; the
    event's fd stays open until then, so the question is about the right event.
    """
    def close():
        if not fds:
            return
        event, link = fds[0], fds[1]
        fds.clear()
        asked, unlinked = threading.Event(), threading.Event()

        def finish():
            try:
                os.close(link)
            finally:
                unlinked.set()
            asked.wait()
            os.close(event)

        _close_later_with(finish)
        try:
            while prog is not None and not unlinked.is_set():
                running = _tracepoint_programs(event)
                if running is None:
                    break  # a kernel that cannot be asked: wait for the link's close itself
                if prog not in running:
                    return
                time.sleep(0.0002)
            unlinked.wait()
        finally:
            asked.set()
    return close


_closing: set[threading.Thread] = set()
_closing_lock = threading.Lock()


def _close_later(fds: list[int]) -> None:
    def run():
        for fd in fds:
            os.close(fd)

    _close_later_with(run)


def _close_later_with(run) -> threading.Thread:
    def work():
        try:
            run()
        finally:
            with _closing_lock:
                _closing.discard(worker)

    worker = threading.Thread(target=work, name="perf-event-close", daemon=True)
    with _closing_lock:
        _closing.add(worker)
    worker.start()
    return worker


def wait_closed(timeout: float | None = None) -> None:
    """Wait until the perf events of earlier detaches are closed (tests and leak checks count fds)."""
    with _closing_lock:
        pending = list(_closing)
    for worker in pending:
        worker.join(timeout)


def attach_events(prog_fd: int, events: list[tuple[int, int, int]], period: int = 0, freq: int = 0,
                  pid: int = -1) -> list[int]:
    """Link the program to one event per (type, config, cpu); returns [event, link, event, link, ...] fds.

    Raises OSError, with nothing left open.
    """
    fds: list[int] = []
    try:
        for ev_type, config, cpu in events:
            efd = perf_event_open(ev_type, config, pid=pid, cpu=cpu, period=period, freq=freq)
            fds.append(efd)
            fds.append(link(prog_fd, efd))
    except OSError:
        for fd in reversed(fds):
            os.close(fd)
        raise
    return fds


def event_of(name: str) -> tuple[int, int]:
    """(perf type, config) of a named event."""
    if name in _SOFTWARE:
        return TYPE_SOFTWARE, _SOFTWARE[name]
    if name in _HARDWARE:
        return TYPE_HARDWARE, _HARDWARE[name]
    raise AttachError(f"unknown perf event {name!r}", hint="one of: " + ", ".join(EVENTS))


def perf_event(req: Request) -> list[Attachment]:
    """Sample on a software or hardware event, on every online CPU (or --cpu), for all or one process."""
    from ..features import feature
    from ..maps import online_cpus

    o = req.options
    name = o.event or DEFAULT_EVENT
    ev_type, config = event_of(name)
    if ev_type == TYPE_HARDWARE:
        hw = feature("perf_event_hw")
        if hw is not None and not hw.available:
            raise KernelRefusedError(f"hardware event {name} cannot be sampled here", detail=hw.reason,
                                     hint="--event cpu-clock (software) samples on any kernel")
    freq = o.freq if (o.freq or o.period) else DEFAULT_FREQ
    period = o.period or 0
    cpus = [o.cpu] if o.cpu is not None else online_cpus()
    # A process-bound event follows the task on any CPU: one event, cpu -1.
    if o.pid is not None and o.cpu is None:
        cpus = [-1]
    try:
        fds = attach_events(req.fd, [(ev_type, config, cpu) for cpu in cpus], period=period, freq=freq or 0,
                            pid=o.pid if o.pid is not None else -1)
    except OSError as exc:
        raise AttachError(f"attaching {req.fn} to perf event {name}: {libbpf.strerror(exc.errno)}",
                          hint="perf_event programs take struct bpf_perf_event_data *ctx; "
                               "check --pid and --cpu") from None
    point = f"{name} @ {freq} Hz" if freq else f"{name} @ every {period} events"
    return [Attachment("perf_event", point, _closer(fds))]
