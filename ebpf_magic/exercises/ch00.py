"""Chapter 00's exercise: count one syscall per process."""
from __future__ import annotations

import random
import subprocess
import sys

from . import NotYet, exercise, require_map


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """A child Python (no site packages, so it starts fast) that runs ``code`` and exits."""
    return subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          timeout=timeout, check=True)


def child_pids_calling(call: str, counts: list[int]) -> list[int]:
    """One child per count, each calling ``call`` (e.g. "os.getppid()") that many times; their pids."""
    code = "import os, sys\nfor _ in range(int(sys.argv[1])):\n    {call}\nprint(os.getpid())"
    return [int(subprocess.run([sys.executable, "-S", "-c", code.format(call=call), str(n)],
                               capture_output=True, text=True, timeout=60, check=True).stdout)
            for n in counts]


def per_key(handle, map_name: str) -> dict[int, int]:
    """A key -> value map with scalar keys and values, as a dict (NotYet if it is shaped otherwise)."""
    df = require_map(handle, map_name).to_frame()
    if list(df.columns[:2]) != ["key", "value"]:
        raise NotYet(f"{map_name!r} should map a number to a number; its columns are {list(df.columns)}")
    return {int(k): int(v) for k, v in zip(df["key"], df["value"], strict=True)}


@exercise("00-getppid-count", "00-quickstart", "count getppid() calls per process")
def getppid_count(handle) -> str:
    # Two children with different secret counts: what a child's Python does on its own at start-up
    # cancels out in the difference, so the check can ask for exact numbers.
    few, many = random.randint(20, 60), random.randint(100, 300)
    small, big = child_pids_calling("os.getppid()", [few, many])
    counts = per_key(handle, "counts")
    if small not in counts or big not in counts:
        seen = ", ".join(str(k) for k in sorted(counts)[:5]) or "nothing"
        raise NotYet(f"two child processes (pids {small} and {big}) called getppid(), but 'counts' has "
                     f"no key for their pids (keys: {seen}...): key the map by the process id")
    if counts[big] - counts[small] != many - few or counts[small] < few:
        hint = ("the map holds 1s: add one per call (increment), do not set 1"
                if counts[small] == counts[big] == 1 else "count each getppid() call once, and nothing else")
        raise NotYet(f"pid {small} called getppid() {few} times and pid {big} {many} times; "
                     f"'counts' says {counts[small]} and {counts[big]}: {hint}")
    return f"counted {few} and {many} getppid() calls of two child processes under their pids"
