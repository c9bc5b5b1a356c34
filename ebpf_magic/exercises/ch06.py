"""Chapter 06's exercise: a uprobe on libc's usleep() that adds up its argument per process."""
from __future__ import annotations

import random
import subprocess
import sys

from . import NotYet, exercise
from .ch00 import per_key

# Calls libc's usleep() itself (time.sleep() uses clock_nanosleep), a secret number of times.
_SLEEPER = """
import ctypes, os, sys
libc = ctypes.CDLL("libc.so.6")
for _ in range(int(sys.argv[2])):
    libc.usleep(int(sys.argv[1]))
print(os.getpid())
"""


@exercise("06-usleep-args", "06-uprobe-usdt", "add up usleep()'s argument per process with a libc uprobe")
def usleep_args(handle) -> str:
    per_key(handle, "slept")   # the map exists and maps a number to a number
    usecs, calls = random.randint(100, 999), random.randint(3, 9)
    out = subprocess.run([sys.executable, "-S", "-c", _SLEEPER, str(usecs), str(calls)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    child = int(out)
    slept = per_key(handle, "slept")
    if child not in slept:
        raise NotYet(f"a child process (pid {child}) called usleep({usecs}) {calls} times, but 'slept' has no key "
                     f"{child} (keys: {sorted(slept)[:5]}): key it by the process id, and probe libc's usleep")
    want = usecs * calls
    if slept[child] != want:
        hint = ("that is the number of calls: add the first argument, PT_REGS_PARM1(ctx)" if slept[child] == calls
                else "add the first argument, PT_REGS_PARM1(ctx), at the function's entry (a uprobe)")
        raise NotYet(f"pid {child} called usleep({usecs}) {calls} times, {want} us in all; 'slept' says "
                     f"{slept[child]}: {hint}")
    return f"a child called usleep({usecs}) {calls} times, and 'slept' holds {want} us for its pid"
