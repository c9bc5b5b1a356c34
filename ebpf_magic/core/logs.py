"""libbpf's own messages, captured instead of written to the process's stderr.

libbpf prints through one global callback. The lab installs it once; inside
``capture()`` the formatted lines are kept for the error a failure raises,
and outside they are dropped below warning level.
"""
from __future__ import annotations

import contextlib
import ctypes as ct
import sys
import threading

from .. import libbpf

_LIBC = ct.CDLL(None)
# vasprintf sizes the text itself: libbpf prints a whole verifier log as one message, and a
# fixed buffer would cut off its end, where the verifier says what it refused.
_LIBC.vasprintf.argtypes = [ct.POINTER(ct.c_void_p), ct.c_char_p, ct.c_void_p]
_LIBC.free.argtypes = [ct.c_void_p]
_LIBBPF_WARN, _LIBBPF_DEBUG = 0, 2
_local = threading.local()
_installed = None


def _print(level: int, fmt: bytes, args) -> int:
    out = ct.c_void_p()
    if _LIBC.vasprintf(ct.byref(out), fmt, args) < 0:
        return 0
    try:
        text = ct.string_at(out).decode(errors="replace")
    finally:
        _LIBC.free(out)
    sink = getattr(_local, "lines", None)
    if sink is not None:
        if level < _LIBBPF_DEBUG:
            sink.append(text)
    elif level == _LIBBPF_WARN:
        sys.stderr.write(text)
    return 0


def install() -> None:
    """Set the callback, again each time: loading a BCC cell replaces it (with NULL)."""
    global _installed
    if _installed is None:
        _installed = libbpf.PRINT_FN(_print)
    libbpf.lib().libbpf_set_print(_installed)


@contextlib.contextmanager
def capture():
    """Collect libbpf's messages in the block; yields the list they go to."""
    install()
    outer = getattr(_local, "lines", None)
    _local.lines = []
    try:
        yield _local.lines
    finally:
        _local.lines = outer


def prog_load_log(messages: list[str]) -> str:
    """The verifier log libbpf printed between its BEGIN/END PROG LOAD LOG markers."""
    text = "".join(messages)
    if "-- BEGIN PROG LOAD LOG --" not in text:
        return text
    body = text.split("-- BEGIN PROG LOAD LOG --", 1)[1]
    return body.split("-- END PROG LOAD LOG --", 1)[0]
