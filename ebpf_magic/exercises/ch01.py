"""Chapter 01's exercise: one object, two programs in two sections, counting calls and failures."""
from __future__ import annotations

import random
import subprocess
import sys

from . import NotYet, exercise
from .ch00 import per_key

# getcwd() through libc: with a 1-byte buffer the kernel answers -ERANGE (a failed call).
_GETCWD = """
import ctypes, os, sys
libc = ctypes.CDLL(None)
buf = ctypes.create_string_buffer(4096)
for _ in range(int(sys.argv[1])):
    libc.getcwd(buf, 4096)
for _ in range(int(sys.argv[2])):
    libc.getcwd(buf, 1)
print(os.getpid())
"""


def _child(ok: int, failing: int) -> int:
    out = subprocess.run([sys.executable, "-S", "-c", _GETCWD, str(ok), str(failing)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return int(out)


@exercise("01-two-sections", "01-sec-and-elf", "two programs in one object: getcwd() calls and failures")
def two_sections(handle) -> str:
    per_key(handle, "calls")
    per_key(handle, "failures")
    # Two children with different secret mixes: what Python does by itself at start-up cancels out.
    (ok1, bad1), (ok2, bad2) = [(random.randint(5, 40), random.randint(5, 40)) for _ in range(2)]
    first, second = _child(ok1, bad1), _child(ok2, bad2)
    calls, failures = per_key(handle, "calls"), per_key(handle, "failures")
    if first not in calls or second not in calls:
        raise NotYet(f"children {first} and {second} called getcwd(), but 'calls' has no key for them: "
                     "count every sys_enter_getcwd by process id")
    if calls[second] - calls[first] != (ok2 + bad2) - (ok1 + bad1):
        raise NotYet(f"child {first} called getcwd() {ok1 + bad1} times and child {second} {ok2 + bad2} times; "
                     f"'calls' says {calls[first]} and {calls[second]}: add one per call")
    if second not in failures or first not in failures:
        raise NotYet(f"{bad1} and {bad2} of the children's getcwd() calls failed with ERANGE, but 'failures' has no "
                     f"key for them ({len(failures)} keys): a second program, in SEC(\"tp/syscalls/sys_exit_getcwd\"), "
                     "sees ctx->ret")
    if failures[second] - failures[first] != bad2 - bad1 or failures[first] < bad1:
        raise NotYet(f"{bad1} of child {first}'s calls and {bad2} of child {second}'s failed; 'failures' says "
                     f"{failures[first]} and {failures[second]}: count the exits with ctx->ret < 0")
    return f"two children made {ok1}+{bad1} and {ok2}+{bad2} getcwd() calls (ok+failed): both maps agree"
