"""bpf_trace_printk() output: the kernel's shared trace_pipe, read for a while and parsed."""
from __future__ import annotations

import os
import re
import select
import time

from .features import TRACEFS

# "  python-1234    [001] d..31  2747.587195: bpf_trace_printk: lab read 5000"
_LINE = re.compile(r"^\s*(.+?)-(\d+)\s+\[(\d+)\]\s+\S+\s+([\d.]+):\s+\S+:\s?(.*)$")
COLUMNS = ["task", "pid", "cpu", "ts", "msg"]


def drain(limit: int = 1 << 24) -> None:
    """Throw away lines nobody read, so a program's view starts with its own."""
    try:
        fd = os.open(f"{TRACEFS}/trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        for _ in range(limit // 65536):
            if not os.read(fd, 65536):
                break
    except BlockingIOError:
        pass
    finally:
        os.close(fd)


def read(duration: float = 1.0, max_lines: int = 10_000):
    """Lines printed during ``duration`` seconds, as a DataFrame (task, pid, cpu, ts, msg)."""
    import pandas as pd

    rows, pending = [], b""
    fd = os.open(f"{TRACEFS}/trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
    try:
        end = time.monotonic() + duration
        while len(rows) < max_lines:
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            try:
                pending += os.read(fd, 65536)
            except BlockingIOError:
                continue
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                m = _LINE.match(raw.decode(errors="replace"))
                if m and len(rows) < max_lines:
                    rows.append({"task": m[1], "pid": int(m[2]), "cpu": int(m[3]), "ts": float(m[4]),
                                 "msg": m[5]})
    finally:
        os.close(fd)
    return pd.DataFrame(rows, columns=COLUMNS)
