"""Network namespaces held only by file descriptors.

A namespace made with ``unshare(CLONE_NEWNET)`` in a short-lived thread and
kept by an fd to ``/proc/thread-self/ns/net`` has no name under /run/netns:
``ip netns list`` never shows it, and when the process dies (even by
``kill -9``) the kernel closes the fd, frees the namespace and deletes its
interfaces together with whatever programs, links and qdiscs hang on them.

Work inside a namespace runs in a thread that ``setns()`` into it first:
network namespaces are per thread, and a socket (netlink, packet, UDP) or a
child process created there stays in that namespace for its whole life.
"""
from __future__ import annotations

import ctypes as ct
import os
import threading
from collections.abc import Callable

CLONE_NEWNET = 0x40000000
_libc = ct.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ct.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def in_thread(fn: Callable[[], object], name: str = "ebpf-magic-netns"):
    """Run ``fn`` in a new thread and return its result (or raise its exception) here."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name=name, daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def new_netns() -> int:
    """An fd holding a fresh, unnamed network namespace."""
    def make():
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    return in_thread(make)


def enter(fd: int) -> None:
    """Move the calling thread into the namespace of ``fd`` (only that thread)."""
    _check(_libc.setns(fd, CLONE_NEWNET), "setns(CLONE_NEWNET)")


def run_in(fd: int, fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a thread inside the namespace ``fd``."""
    def inside():
        enter(fd)
        return fn(*args, **kwargs)

    return in_thread(inside)


def inode(fd: int) -> int:
    """The namespace's identity, as ``ls -l /proc/PID/ns/net`` and ``bpftool net`` show it."""
    return os.fstat(fd).st_ino


def write_sysctl(path: str, value) -> None:
    """Write /proc/sys/PATH (e.g. "net/ipv6/conf/all/accept_dad") as the calling thread's namespace sees it."""
    with open(f"/proc/sys/{path}", "w") as f:
        f.write(str(value))
