"""Workloads the checks run: a child process that does what the exercise asks the program to see."""
from __future__ import annotations

import subprocess
import sys

from ..errors import BPFLabError


def python_child(code: str, *args: str, timeout: float = 120) -> int:
    """Run ``code`` in a fresh, quiet Python (no site, no bytecode writes); return its pid.

    The child does only what ``code`` says, so a per-process count of it is exact.
    """
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-B", "-c", code, *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise BPFLabError("the exercise's workload failed (a lab fault, not your program)",
                          detail=err.decode(errors="replace")[-500:], hint="run the check again")
    return proc.pid
