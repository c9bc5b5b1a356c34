"""perf_event programs: sampled on a software or hardware perf event, on every CPU."""
from __future__ import annotations

from ..errors import AttachError, KernelRefusedError
from ..features import feature
from .base import Attachment, Request, bcc_call

_SOFTWARE = {"cpu-clock": 0, "task-clock": 1, "page-faults": 2, "context-switches": 3,
             "cpu-migrations": 4, "minor-faults": 5, "major-faults": 6, "alignment-faults": 7,
             "emulation-faults": 8}
_HARDWARE = {"cycles": 0, "instructions": 1, "cache-references": 2, "cache-misses": 3,
             "branches": 4, "branch-misses": 5, "bus-cycles": 6, "ref-cycles": 9}
EVENTS = [*_SOFTWARE, *_HARDWARE]
DEFAULT_EVENT, DEFAULT_FREQ = "cpu-clock", 99


def event_of(name: str) -> tuple[int, int]:
    """(perf type, config): PERF_TYPE_HARDWARE is 0, PERF_TYPE_SOFTWARE is 1."""
    if name in _SOFTWARE:
        return 1, _SOFTWARE[name]
    if name in _HARDWARE:
        return 0, _HARDWARE[name]
    raise AttachError(f"unknown perf event {name!r}", hint="one of: " + ", ".join(EVENTS))


def _sampling(o) -> tuple[str, int, int, int, int]:
    """(event name, perf type, config, period, freq) from the magic line, checked against this kernel."""
    name = o.event or DEFAULT_EVENT
    ev_type, config = event_of(name)
    if ev_type == 0:
        hw = feature("perf_event_hw")
        if hw is not None and not hw.available:
            raise KernelRefusedError(f"hardware event {name} cannot be sampled here", detail=hw.reason,
                                     hint="--event cpu-clock (software) samples on any kernel")
    if o.freq and o.period:
        raise AttachError("give --freq or --period, not both",
                          hint="--freq N samples N times a second; --period N every N events")
    freq = o.freq if (o.freq or o.period) else DEFAULT_FREQ
    return name, ev_type, config, o.period or 0, freq or 0


def _point(name: str, period: int, freq: int) -> str:
    return f"{name} @ {freq} Hz" if freq else f"{name} @ every {period} events"


def perf_event(req: Request) -> list[Attachment]:
    o = req.options
    name, ev_type, config, period, freq = _sampling(o)
    cpu = o.cpu if o.cpu is not None else -1
    pid = o.pid if o.pid is not None else -1
    b = req.bpf
    bcc_call(f"attaching {req.fn} to perf event {name}",
             lambda: b.attach_perf_event(ev_type=ev_type, ev_config=config, fn_name=req.fn.encode(),
                                         sample_period=period, sample_freq=freq, pid=pid, cpu=cpu),
             hint="perf_event programs take struct bpf_perf_event_data *ctx")
    return [Attachment("perf_event", _point(name, period, freq), lambda: b.detach_perf_event(ev_type, config))]


def attach_fd(prog_fd: int, fn: str, o) -> list[Attachment]:
    """A perf_event program loaded outside BCC (CO-RE), sampled on every online CPU."""
    from bcc import lib
    from bcc.utils import get_online_cpus

    name, ev_type, config, period, freq = _sampling(o)
    cpus = [o.cpu] if o.cpu is not None else get_online_cpus()
    fds: list[int] = []

    def close():
        for fd in fds:
            lib.bpf_close_perf_event_fd(fd)

    for cpu in cpus:
        fd = lib.bpf_attach_perf_event(prog_fd, ev_type, config, period, freq,
                                       o.pid if o.pid is not None else -1, cpu, -1)
        if fd < 0:
            close()
            raise AttachError(f"attaching {fn} to perf event {name} on CPU {cpu} failed",
                              hint="perf_event programs take struct bpf_perf_event_data *ctx")
        fds.append(fd)
    return [Attachment("perf_event", _point(name, period, freq), close)]
