"""Chapter 04's exercise: count involuntary context switches per thread from tp_btf/sched_switch."""
from __future__ import annotations

import os
import random
import subprocess
import sys

from . import NotYet, exercise
from .ch00 import per_key

# Spin for a secret amount of CPU time, say so, then block on stdin: alive, so /proc can be read.
_SPIN_THEN_WAIT = """
import sys, time
end = time.process_time() + float(sys.argv[1])
while time.process_time() < end:
    pass
print('done', flush=True)
sys.stdin.read()
"""


def _switches(pid: int) -> tuple[int, int]:
    """(voluntary, nonvoluntary) context switches of a single-threaded process, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if "ctxt_switches" in line)
    return int(fields["voluntary_ctxt_switches"]), int(fields["nonvoluntary_ctxt_switches"])


@exercise("04-involuntary", "04-tp-btf", "count involuntary context switches per thread")
def involuntary(handle) -> str:
    per_key(handle, "involuntary")    # the map exists and maps a number to a number
    # More spinners than CPUs, so that the scheduler has to preempt them.
    spinners = [subprocess.Popen([sys.executable, "-S", "-c", _SPIN_THEN_WAIT, f"{random.uniform(0.3, 0.6):.2f}"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for _ in range((os.cpu_count() or 1) + 1)]
    try:
        for s in spinners:
            if s.stdout.readline().strip() != "done":
                raise NotYet(f"a spinner (pid {s.pid}) exited early: the check could not run")
        kernel = {s.pid: _switches(s.pid) for s in spinners}
        counted = per_key(handle, "involuntary")
    finally:
        for s in spinners:
            s.stdin.close()
            s.wait()
    nonvol = {pid: n for pid, (_v, n) in kernel.items()}
    if sum(nonvol.values()) == 0:
        raise NotYet("the scheduler preempted none of the spinners this time: run the check again")
    got = {pid: counted.get(pid, 0) for pid in kernel}
    missing = [pid for pid in kernel if pid not in counted]
    if len(missing) == len(kernel):
        raise NotYet(f"{len(kernel)} spinners (pids {sorted(kernel)}) were preempted {sum(nonvol.values())} times, "
                     f"but 'involuntary' has none of their thread ids (keys: {sorted(counted)[:5]}...)")
    off = sum(abs(got[p] - nonvol[p]) for p in kernel)
    if off > 1:
        pid = max(kernel, key=lambda p: abs(got[p] - nonvol[p]))
        vol = kernel[pid][0]
        hint = ("that is every switch, voluntary ones too: keep only preempt || prev_state == 0"
                if got[pid] == vol + nonvol[pid] and vol else
                "a switch is involuntary when preempt is true or prev_state == 0 (TASK_RUNNING)")
        raise NotYet(f"spinner {pid} was switched out involuntarily {nonvol[pid]} times (/proc/{pid}/status), "
                     f"'involuntary' says {got[pid]}: {hint}")
    return (f"the involuntary switches of {len(kernel)} spinners match /proc's nonvoluntary_ctxt_switches "
            f"({sum(nonvol.values())} in all)")
