"""Chapter 05's exercise: a system-wide cpu-clock profile that finds a busy process by its pid."""
from __future__ import annotations

import os
import random
import subprocess
import sys

from . import NotYet, exercise
from .ch00 import per_key

FREQ = 99   # the starter's --freq: samples per second of CPU time
# Spin for a secret amount of this process's own CPU time, however busy the machine is.
_SPIN = "import time\nend = time.process_time() + {secs}\nwhile time.process_time() < end:\n    pass\n"


@exercise("05-busy-pid", "05-perf-event", "find a busy process in a system-wide cpu-clock profile")
def busy_pid(handle) -> str:
    samples = per_key(handle, "samples")    # the map exists and maps a number to a number
    handle["samples"].clear()
    secs = round(random.uniform(0.4, 0.8), 2)
    child = subprocess.Popen([sys.executable, "-S", "-c", _SPIN.format(secs=secs)])
    _pid, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise NotYet(f"the busy child (pid {child.pid}) failed: the check could not run")
    cpu = usage.ru_utime + usage.ru_stime
    expected = cpu * FREQ
    samples = per_key(handle, "samples")
    got = samples.get(child.pid, 0)
    if child.pid not in samples:
        top = sorted(samples.items(), key=lambda kv: -kv[1])[:3]
        raise NotYet(f"a child process (pid {child.pid}) was busy for {cpu:.2f} s of CPU, about {expected:.0f} "
                     f"samples at {FREQ} Hz, but 'samples' has no key {child.pid} (top keys: {top}): "
                     "key the map by the process id, the upper 32 bits of bpf_get_current_pid_tgid()")
    if not 0.5 * expected <= got <= 2 * expected + 10:
        raise NotYet(f"pid {child.pid} was busy for {cpu:.2f} s of CPU: at --freq {FREQ} that is about "
                     f"{expected:.0f} samples, but 'samples' holds {got}: add one per sample, sampling at {FREQ} Hz")
    return f"found the busy child (pid {child.pid}): {got} samples for {cpu:.2f} s of CPU (about {expected:.0f} expected)"
