"""What every family's attacher takes and gives back."""
from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import AttachError, BPFLabError


@dataclass
class Options:
    """The magic-line options that attachers read (names as in ``%%bpf?``)."""

    pid: int | None = None
    event: str | None = None
    freq: int | None = None
    period: int | None = None
    cpu: int | None = None
    dev: str | None = None          # xdp/tc/socket: a lab host "b" or "b:eth0" (a real interface with real_dev)
    xdp_mode: str | None = None     # xdp: "skb" (generic) or "drv" (native); None: the kernel picks
    direction: str | None = None    # tc/classifier: "ingress" or "egress"
    clsact: bool = False            # tc: a netlink clsact filter, as tc(8) makes, instead of a tcx link
    real_dev: bool = False          # --dev names an interface of this machine, outside the lab network
    cgroup: object = None       # cgroup families, sockops: a cgroups.LabCgroup or a cgroup v2 path
    map: str | None = None      # sk_msg, sk_skb: "HANDLE:MAP" (another handle's map) or "MAP" (the cell's)
    netns: str | None = None    # sk_lookup, flow_dissector: a lab host "b" (a namespace file with real_netns)
    real_netns: bool = False    # --netns names a namespace of this machine ("self" or a path), outside the lab
    sockets: int | None = None  # sk_reuseport: how many SO_REUSEPORT listeners the lab opens (default 4)
    port: int | None = None     # sk_reuseport: their port (default: any free one)

    def check(self) -> None:
        """Refuse what no kernel could use, before anything compiles."""
        from ..errors import UsageError
        from .perf import EVENTS

        for opt in ("pid", "freq", "period"):
            value = getattr(self, opt)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise UsageError(f"--{opt} {value!r} must be a positive whole number", hint=f"e.g. --{opt} 99")
        if self.cpu is not None and (not isinstance(self.cpu, int) or not 0 <= self.cpu < os.cpu_count()):
            raise UsageError(f"--cpu {self.cpu!r} is not a CPU of this machine",
                             hint=f"CPUs 0 to {os.cpu_count() - 1}, or leave it out for all")
        if self.freq and self.period:
            raise UsageError("give --freq or --period, not both",
                             hint="--freq N samples N times a second; --period N every N events")
        if self.event is not None and self.event not in EVENTS:
            close = close_matches(self.event, EVENTS)
            raise UsageError(f"unknown perf event {self.event!r}",
                             hint=(f"did you mean {', '.join(close)}? " if close else "") + "one of: " + ", ".join(EVENTS))
        from . import cgroup, net, netns_link, reuseport

        net.check_options(self)
        netns_link.check_options(self)
        reuseport.check_options(self)
        if self.cgroup is not None or self.map is not None:
            cgroup.check_options(self)
        if self.pid is not None and not os.path.exists(f"/proc/{self.pid}"):
            raise UsageError(f"--pid {self.pid}: no such process",
                             hint="list processes with ps -e, or start the program first (subprocess.Popen)")


@dataclass
class Request:
    """What an attacher gets: the loaded program and, per engine, the object that loaded it."""

    fd: int                 # the loaded program's fd
    fn: str                 # the program function
    section: object         # sections.Section
    options: Options = field(default_factory=Options)
    module: object = None   # BCC cells: bcc_engine.Module
    prog: int | None = None  # CO-RE cells: libbpf's struct bpf_program *

    @property
    def bpf(self):
        return self.module.bpf


@dataclass
class Attachment:
    """One attach point; ``detach()`` is idempotent."""

    kind: str
    point: str
    _detach: Callable[[], None] | None = None
    fd: int | None = None   # the link fd, for links the lab reads from (iterators)
    program: str | None = None  # the program function attached here (CO-RE objects hold several)
    target: object = None   # the session resource it is attached to (a lab cgroup), if any

    def detach(self) -> None:
        fn, self._detach = self._detach, None
        if fn is not None:
            fn()

    @property
    def attached(self) -> bool:
        return self._detach is not None

    def __str__(self) -> str:
        return f"{self.kind} {self.point}"


def fd_link(kind: str, point: str, link_fd: int, target: object = None) -> Attachment:
    return Attachment(kind, point, lambda: os.close(link_fd), fd=link_fd, target=target)


def bcc_call(what: str, call: Callable[[], object], *, hint: str, close: list[str] | None = None):
    """Run a BCC attach call; BCC raises bare Exceptions and prints to fd 2."""
    from ..fdcapture import stderr_fd

    with stderr_fd() as cap:
        try:
            return call()
        except BPFLabError:
            raise
        except Exception as exc:
            err = exc
    printed = " ".join(ln.strip() for ln in cap.text.splitlines() if ln.strip())[:300]
    detail = f"{err}" + (f"\n{printed}" if printed else "")
    if close:
        hint = f"{hint}; close matches: {', '.join(close)}"
    raise AttachError(what, detail=detail, hint=hint) from None


def need(req: Request, value, what: str, example: str):
    if value in (None, ""):
        raise AttachError(f"{req.section.name} does not say {what}",
                          hint=f"write it in the SEC name, e.g. %%bpf {example}")
    return value


def close_matches(word: str, choices, n: int = 3) -> list[str]:
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)
