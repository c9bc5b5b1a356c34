"""Chapter 10's exercise: bytes written per file (inode), from fexit on vfs_write."""
from __future__ import annotations

import os
import random
import tempfile

from . import NotYet, entries, exercise


@exercise("10-bytes-per-file", "10-fentry-fexit", "bytes and successful writes per inode (fexit)")
def bytes_per_file(handle) -> str:
    expected: dict[int, tuple[int, int]] = {}
    with tempfile.TemporaryDirectory(prefix="ebpf-lab-10-") as work:
        for i in range(random.randint(2, 4)):
            path = os.path.join(work, f"f{i}")
            sizes = [random.randint(10, 3000) for _ in range(random.randint(1, 6))]
            with open(path, "wb", buffering=0) as f:
                for n in sizes:
                    f.write(b"w" * n)
            with open(path, "rb", buffering=0) as f:   # one write that fails: -EBADF
                try:
                    os.write(f.fileno(), b"x")
                except OSError:
                    pass
            expected[os.stat(path).st_ino] = (sum(sizes), len(sizes))
        got_bytes, got_writes = entries(handle, "bytes_by_ino"), entries(handle, "writes_by_ino")
    for ino, (nbytes, nwrites) in expected.items():
        if ino not in got_bytes:
            raise NotYet(f"inode {ino} got {nwrites} writes, but 'bytes_by_ino' has no entry for it")
        if got_bytes[ino] != nbytes:
            raise NotYet(f"inode {ino} got {nbytes} bytes written successfully; 'bytes_by_ino' says "
                         f"{got_bytes[ino]} (count only writes whose return value is positive)")
        if got_writes.get(ino) != nwrites:
            raise NotYet(f"inode {ino} got {nwrites} successful writes; 'writes_by_ino' says "
                         f"{got_writes.get(ino, 'nothing')}")
    return f"{len(expected)} files, every byte and write counted, failed writes left out"
