"""Whether this process may load BPF programs at all, asked before any compiling."""
from __future__ import annotations

import os

from .errors import NotRootError

_CAP_SYS_ADMIN, _CAP_PERFMON, _CAP_BPF = 21, 38, 39


def check_privileges() -> None:
    try:
        with open("/proc/self/status") as f:
            cap = int(next(ln for ln in f if ln.startswith("CapEff:")).split()[1], 16)
    except (OSError, StopIteration, ValueError):
        cap = 0

    def has(bit: int) -> bool:
        return bool(cap >> bit & 1)

    if os.geteuid() == 0 or has(_CAP_SYS_ADMIN) or (has(_CAP_BPF) and has(_CAP_PERFMON)):
        return
    raise NotRootError(f"loading BPF programs needs root (running as uid {os.geteuid()})",
                       hint="start the lab as root: sudo make lab")
