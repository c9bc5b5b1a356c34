"""Chapter 09's exercise: bytes written per process, from a kretprobe on vfs_write."""
from __future__ import annotations

import os
import random
import tempfile

from . import NotYet, entries, exercise
from .workloads import python_child

# The child writes the sizes given on its command line to a new file, then tries FAILS
# writes on a read-only descriptor, which vfs_write refuses with -EBADF.
_WRITER = """
import os, sys
path, sizes, fails = sys.argv[1], [int(s) for s in sys.argv[2].split(",")], int(sys.argv[3])
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
for n in sizes:
    os.write(fd, b"w" * n)
os.close(fd)
fd = os.open(path, os.O_RDONLY)
for _ in range(fails):
    try:
        os.write(fd, b"x")
    except OSError:
        pass
os.close(fd)
"""


@exercise("09-bytes-written", "09-kprobe-kretprobe", "bytes written and failed writes per process (kretprobe)")
def bytes_written(handle) -> str:
    sizes = [random.randint(100, 5000) for _ in range(random.randint(3, 9))]
    fails = random.randint(1, 4)

    def counts(pid):
        return entries(handle, "written").get(pid, 0), entries(handle, "failed").get(pid, 0)

    # The file is named here: tempfile in the child would probe the temporary directory with a write.
    with tempfile.TemporaryDirectory(prefix="ebpf-lab-09-") as work:
        pid, (written0, failed0) = python_child(_WRITER, os.path.join(work, "out"), ",".join(map(str, sizes)),
                                                str(fails), at_gate=counts)
    written, failed = counts(pid)
    if written == written0:
        raise NotYet(f"process {pid} wrote {len(sizes)} times ({sum(sizes)} bytes), but 'written' did not "
                     f"change for it ({len(entries(handle, 'written'))} entries in all)")
    if written - written0 != sum(sizes):
        raise NotYet(f"process {pid} wrote {sum(sizes)} bytes in {len(sizes)} writes; 'written' grew by "
                     f"{written - written0} (add the return value of each successful vfs_write)")
    if failed - failed0 != fails:
        raise NotYet(f"process {pid} had {fails} failed writes; 'failed' grew by {failed - failed0}")
    return f"process {pid}: {sum(sizes)} bytes in {len(sizes)} writes, {fails} failed, all counted"
