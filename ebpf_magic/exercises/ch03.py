"""Chapter 03's exercise: report cgroup removals with their path, from a raw tracepoint."""
from __future__ import annotations

import os
import random
import secrets
import subprocess
import sys

from . import NotYet, exercise, require_map

_MAKE_AND_REMOVE = """
import os, sys
for path in sys.argv[1:]:
    os.mkdir(path)
    os.rmdir(path)
print(os.getpid())
"""


def cgroup2_root() -> str:
    with open("/proc/mounts") as f:
        for line in f:
            _dev, mount, fstype = line.split()[:3]
            if fstype == "cgroup2" and mount.startswith("/sys/fs/cgroup"):
                return mount
    raise NotYet("no cgroup2 hierarchy is mounted under /sys/fs/cgroup, so the check cannot make cgroups")


@exercise("03-cgroup-rmdir", "03-raw-tracepoint", "report each removed cgroup's path and remover")
def cgroup_rmdir(handle) -> str:
    events = require_map(handle, "rmdir_events")
    handle.events(events.name, duration=0)    # drop what came before the check
    root = cgroup2_root()
    names = [f"lab-ex03-{secrets.token_hex(3)}" for _ in range(random.randint(2, 4))]
    paths = [os.path.join(root, n) for n in names]
    try:
        out = subprocess.run([sys.executable, "-S", "-c", _MAKE_AND_REMOVE, *paths],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    finally:
        for p in paths:   # a child that failed half-way leaves nothing behind either
            if os.path.isdir(p):
                os.rmdir(p)
    child = int(out)
    df = handle.events(events.name, duration=0)
    for col in ("pid", "path"):
        if col not in df.columns:
            raise NotYet(f"a child process created and removed {len(names)} cgroups, but the records of 'rmdir_events' "
                         f"have no field {col!r} (fields: {list(df.columns) or 'no records'})")
    for name in names:
        rows = df[df["path"].astype(str).str.endswith("/" + name)]
        if rows.empty:
            seen = df["path"].astype(str).tolist()[-3:] or ["no records"]
            raise NotYet(f"a child process created and removed the cgroup {name} (and {len(names) - 1} more), but no record's "
                         f"path ends with /{name}: last paths {seen}; args[1] is a string in kernel memory")
        if child not in rows["pid"].astype(int).tolist():
            raise NotYet(f"the record for {name} says pid {rows['pid'].tolist()}, but process {child} removed it: "
                         "the pid is the upper 32 bits of bpf_get_current_pid_tgid()")
    return f"a child (pid {child}) created and removed {len(names)} cgroups with secret names: every removal was reported"
