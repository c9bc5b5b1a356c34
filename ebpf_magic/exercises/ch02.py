"""Chapter 02's exercise: count openat() calls per file name, read from the syscall's arguments."""
from __future__ import annotations

import random
import secrets
import shutil
import tempfile

from . import NotYet, exercise, require_map
from .ch00 import run_python


def string_column(df, map_name: str) -> str:
    """The key column that holds text (a char array in the key struct)."""
    for col in df.columns:
        if col != "value" and df[col].map(lambda v: isinstance(v, str)).all():
            return col
    raise NotYet(f"{map_name!r} has no text key column (columns: {list(df.columns)}): "
                 "key it by a struct holding a char array, e.g. struct fname_t { char name[64]; }")


@exercise("02-openat-count", "02-tracepoint", "count openat() calls per file name")
def openat_count(handle) -> str:
    opens = require_map(handle, "opens")
    opens.clear()   # every process's names land here: make room for the secret one
    workdir = tempfile.mkdtemp(prefix="ex02-")
    try:
        path = f"{workdir}/{secrets.token_hex(4)}.txt"
        times = random.randint(3, 40)
        # A child process, so the program must not depend on this notebook's pid; the first
        # open creates the file, so every openat() of the name is the child's.
        run_python(f"for _ in range({times}):\n    open({path!r}, 'a').close()")
    finally:
        shutil.rmtree(workdir)
    df = opens.to_frame()
    if df.empty:
        raise NotYet(f"a child process opened {path} {times} times, but 'opens' is empty")
    col = string_column(df, "opens")
    names = df[col].tolist()
    if path not in names:
        near = [n for n in names if n and (path.startswith(n) or n.startswith(path))]
        shown = near[0] if near else (max(names, key=len) or "(empty)")
        raise NotYet(f"a child process opened {path} {times} times; 'opens' has no key {path!r} "
                     f"({len(names)} key{'s' * (len(names) != 1)}, e.g. {shown!r}): read the name from args[1] with "
                     "bpf_probe_read_user_str() into a key buffer of 64 bytes")
    got = int(df.loc[df[col] == path, "value"].sum())
    if got != times:
        raise NotYet(f"{path} was opened {times} times, 'opens' says {got}: add one per openat() call")
    return f"a child opened {path} {times} times, and 'opens' counted exactly that"
