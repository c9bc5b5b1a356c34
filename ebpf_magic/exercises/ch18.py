"""Chapter 18's exercise: a per-process histogram of write() sizes, whose NULL check must insert."""
from __future__ import annotations

import random

from . import NotYet, entries, exercise
from .workloads import python_child

BUCKET_BYTES, LAST_BUCKET = 1024, 15

# The child writes the sizes given on its command line to /dev/null, one write() each.
_WRITER = """
import os, sys
fd = os.open("/dev/null", os.O_WRONLY)
for n in sys.argv[1].split(","):
    os.write(fd, b"w" * int(n))
os.close(fd)
"""


def bucket_of(size: int) -> int:
    return min(size // BUCKET_BYTES, LAST_BUCKET)


def _histogram(handle, pid: int) -> dict[int, int]:
    """The learner's 'sizes' entries of process ``pid``: {bucket: count} (key = pid << 32 | bucket)."""
    return {key & 0xFFFFFFFF: n for key, n in entries(handle, "sizes").items() if key >> 32 == pid}


@exercise("18-write-sizes", "18-verifier-errors", "a histogram of write() sizes per process (NULL check that inserts)")
def write_sizes(handle) -> str:
    sizes = [random.randint(1, 20 * BUCKET_BYTES) for _ in range(random.randint(6, 14))]
    sizes.append(random.randint(17 * BUCKET_BYTES, 40 * BUCKET_BYTES))   # at least one for the last bucket
    random.shuffle(sizes)
    expected: dict[int, int] = {}
    for n in sizes:
        expected[bucket_of(n)] = expected.get(bucket_of(n), 0) + 1

    pid, before = python_child(_WRITER, ",".join(map(str, sizes)), at_gate=lambda p: _histogram(handle, p))
    after = _histogram(handle, pid)
    got = {b: n - before.get(b, 0) for b, n in after.items() if n - before.get(b, 0)}
    if not got:
        raise NotYet(f"process {pid} made {len(sizes)} writes, but 'sizes' has no key {pid} << 32 | bucket for "
                     f"it (does the program insert a first count when the lookup finds nothing?)")
    past = sorted(b for b in got if b > LAST_BUCKET)
    if past:
        raise NotYet(f"process {pid} has buckets {past} past the last one ({LAST_BUCKET}): clamp sizes of "
                     f"{LAST_BUCKET} KiB and more into bucket {LAST_BUCKET}")
    for b in sorted(set(expected) | set(got)):
        if got.get(b, 0) != expected.get(b, 0):
            raise NotYet(f"process {pid} made {expected.get(b, 0)} writes of {b * BUCKET_BYTES}.."
                         f"{(b + 1) * BUCKET_BYTES - 1} bytes (bucket {b}); 'sizes' counted {got.get(b, 0)}")
    return f"process {pid}: {len(sizes)} writes in {len(expected)} buckets, every one counted"
