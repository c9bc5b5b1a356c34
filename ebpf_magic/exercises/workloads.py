"""Workloads the checks run: a child process that does what the exercise asks the program to see."""
from __future__ import annotations

import subprocess
import sys
import time

from ..errors import BPFLabError

# The child blocks in read(0) until the check lets it go, so what it does before (an
# interpreter's start-up makes a few syscalls of its own) can be told from the workload.
_GATE = "import os\nos.read(0, 1)\n"
_READ_SYSCALL_X86_64 = "0"


def python_child(code: str, *args: str, at_gate=None, timeout: float = 120):
    """Run ``code`` in a fresh, quiet Python (no site, no bytecode writes).

    ``at_gate(pid)`` runs once the child has started and waits at its gate, before ``code``
    runs: it reads what the program has counted for the child so far. Returns
    ``(pid, at_gate's result)``.
    """
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-B", "-c", _GATE + code, *args],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_at_gate(proc, timeout)
        before = at_gate(proc.pid) if at_gate else None
        _, err = proc.communicate(b"g", timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise BPFLabError("the exercise's workload failed (a lab fault, not your program)",
                          detail=err.decode(errors="replace")[-500:], hint="run the check again")
    return proc.pid, before


def _wait_at_gate(proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return
        try:
            with open(f"/proc/{proc.pid}/syscall") as f:
                nr, fd, *_ = f.read().split() + ["", ""]
        except OSError:
            nr = fd = ""
        if nr == _READ_SYSCALL_X86_64 and fd == "0x0":
            return
        time.sleep(0.005)
    raise BPFLabError("the exercise's workload did not start in time", hint="run the check again")
