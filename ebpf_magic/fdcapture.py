"""Capture what C libraries write to file descriptor 2.

clang (inside BCC) and libbcc print diagnostics and verifier logs straight to
fd 2, below Python's sys.stderr; the lab shows them with the error instead.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile


class Captured:
    text = ""


@contextlib.contextmanager
def stderr_fd(fds: tuple[int, ...] = (2,)):
    """Everything written to ``fds`` (default: fd 2) inside the block, as ``.text``."""
    out = Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as tmp:
        saved = [os.dup(fd) for fd in fds]
        for fd in fds:
            os.dup2(tmp.fileno(), fd)
        try:
            yield out
        finally:
            for fd, old in zip(fds, saved, strict=True):
                os.dup2(old, fd)
                os.close(old)
            tmp.seek(0)
            out.text = tmp.read().decode(errors="replace")
