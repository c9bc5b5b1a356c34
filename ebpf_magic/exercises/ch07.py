"""Chapter 07's exercise: what a full hash map does, recorded by the program itself."""
from __future__ import annotations

import errno
import random
import subprocess
import sys

from . import NotYet, exercise, require_map
from .ch00 import per_key

# Waits for a line on stdin (its pid is in the watch map by then), calls getpid() N times,
# says so, then stays alive until stdin closes.
_CALLER = """
import os, sys
sys.stdin.readline()
for _ in range(int(sys.argv[1])):
    os.getpid()
print('done', flush=True)
sys.stdin.read()
"""


def _watched_child(watch, calls: int) -> int:
    """One child that calls getpid() ``calls`` times while its pid is in ``watch``; its pid."""
    proc = subprocess.Popen([sys.executable, "-S", "-c", _CALLER, str(calls)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        watch[proc.pid] = 1
        proc.stdin.write("go\n")
        proc.stdin.flush()
        if proc.stdout.readline().strip() != "done":
            raise NotYet(f"a child (pid {proc.pid}) exited early: the check could not run")
    finally:
        try:
            del watch[proc.pid]
        except Exception:  # a program that deleted it itself is not the check's concern
            pass
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
    return proc.pid


@exercise("07-full-hash", "07-maps-and-output", "record the failed inserts of a full hash map")
def full_hash(handle) -> str:
    watch = require_map(handle, "watch")
    for name in ("small", "fails"):
        require_map(handle, name).clear()
    calls = [random.randint(5, 60) for _ in range(6)]
    pids = [_watched_child(watch, n) for n in calls]
    small = per_key(handle, "small")
    fails = per_key(handle, "fails")
    kept = {pid: n for pid, n in zip(pids[:4], calls[:4], strict=True)}
    if small != kept:
        raise NotYet(f"six children called getpid() {calls} times, one after the other; a hash of 4 entries "
                     f"keeps the first four, {kept}, but 'small' holds {small}: use BPF_HASH(small, u32, u64, 4), "
                     "look the pid up first and update() only a new one")
    refused = sum(calls[4:])
    if fails.get(0) != refused:
        raise NotYet(f"children 5 and 6 made {calls[4]} + {calls[5]} = {refused} calls that the full map could not "
                     f"take, but fails[0] is {fails.get(0)}: add one to slot 0 each time update() returns < 0")
    if fails.get(1) != -errno.E2BIG:
        raise NotYet(f"fails[1] is {fails.get(1)}; it should hold the error update() returned "
                     f"(-{errno.errorcode[errno.E2BIG]}, {-errno.E2BIG})")
    return (f"the first four children's counts were kept exactly, and {refused} failed inserts of the last two "
            f"were recorded with -E2BIG")
