"""Chapter 08's exercise: a task iterator that lists each task's parent, checked on a secretly named child."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys

from . import NotYet, exercise

# Renames itself (PR_SET_NAME = 15 sets comm), says so, and stays alive until stdin closes.
_NAMED = """
import ctypes, sys
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)
print('ready', flush=True)
sys.stdin.read()
"""


def _rows(text: str) -> dict[int, tuple[int, int, str]]:
    """pid -> (tgid, ppid, comm) from lines "tgid pid ppid comm"; other lines (a header) are skipped."""
    rows = {}
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and all(p.lstrip("-").isdigit() for p in parts[:3]):
            tgid, pid, ppid = (int(p) for p in parts[:3])
            rows[pid] = (tgid, ppid, parts[3])
    return rows


@exercise("08-task-parents", "08-iter", "list every task with its parent process")
def task_parents(handle) -> str:
    comm = f"ex08{secrets.token_hex(4)}"
    child = subprocess.Popen([sys.executable, "-S", "-c", _NAMED, comm], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout.readline().strip() != "ready":
            raise NotYet(f"the named child (pid {child.pid}) exited early: the check could not run")
        text = handle.read()
    finally:
        child.stdin.close()
        child.wait(timeout=30)
        child.stdout.close()
    rows = _rows(text)
    if not rows:
        first = text.splitlines()[:2] or ["nothing"]
        raise NotYet(f"the iterator printed no line of the form 'tgid pid ppid comm' (it printed {first})")
    if child.pid not in rows:
        raise NotYet(f"the iterator listed {len(rows)} tasks, but not the check's child, pid {child.pid}: "
                     "print the kernel's pid (the thread id) in the second column")
    tgid, ppid, got_comm = rows[child.pid]
    me = os.getpid()
    if ppid != me:
        raise NotYet(f"the line for pid {child.pid} says ppid {ppid}, but its parent is {me}, the process that "
                     "started it: print task->real_parent->tgid")
    if got_comm.strip() != comm or tgid != child.pid:
        raise NotYet(f"the line for pid {child.pid} says tgid {tgid} and comm {got_comm!r}; the child is "
                     f"process {child.pid}, named {comm!r}: print task->tgid and task->comm")
    return f"the iterator lists the child {child.pid} named {comm} with its parent {me}, among {len(rows)} tasks"
