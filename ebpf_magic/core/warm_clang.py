"""clang without its start-up cost: one clang process stays loaded and forks a run per compile.

clang spends about 40 ms of CPU loading and initialising libLLVM and
libclang-cpp before it looks at its arguments, as much as compiling a small
cell takes. ``warm_clang.c``, preloaded into a clang that waits on a socket,
forks an already initialised clang for each request (see the C file for the
protocol). Anything that goes wrong with the warm process (no C compiler for
the helper, the process died) makes ``run`` return None, and the caller runs
clang the ordinary way; ``EBPF_LAB_COLD_CLANG=1`` always does.
"""
from __future__ import annotations

import atexit
import hashlib
import os
import socket
import struct
import subprocess
import threading

from . import toolchain

_SOURCE = os.path.join(os.path.dirname(__file__), "warm_clang.c")
_lock = threading.Lock()
_server: _Server | None = None
_broken = False
_compile_cpu_us = 0
_REPLY = struct.Struct("iiq")  # wait status, padding, the compile's CPU time in microseconds


class _Server:
    def __init__(self, clang: str, preload: str):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ, LD_PRELOAD=preload, EBPF_LAB_CLANG_SERVER=str(theirs.fileno()))
        try:
            self.proc = subprocess.Popen([clang], env=env, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
        finally:
            theirs.close()
        self.sock = ours
        self.clang = clang
        self.owner = os.getpid()  # a forked child must not share the socket's replies with its parent

    def run(self, args: list[str], cwd: str) -> subprocess.CompletedProcess:
        """Raises OSError if the warm process is gone."""
        payload = b"\0".join(os.fsencode(a) for a in [cwd, *args])
        err_r, err_w = os.pipe()
        null = os.open(os.devnull, os.O_RDWR)
        try:
            socket.send_fds(self.sock, [payload], [null, null, err_w])
        finally:
            os.close(err_w)
            os.close(null)
        with os.fdopen(err_r, "rb") as err:
            stderr = err.read()  # to EOF: the child's end closes when it exits
        reply = self.sock.recv(_REPLY.size)
        if len(reply) != _REPLY.size:
            raise OSError("the warm clang process exited")
        status, _, cpu_us = _REPLY.unpack(reply)
        _count_cpu(cpu_us)
        code = os.waitstatus_to_exitcode(status)
        return subprocess.CompletedProcess([self.clang, *args[1:]], code, "", stderr.decode(errors="replace"))

    def close(self) -> None:
        self.sock.close()  # the server exits when its socket closes
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _count_cpu(cpu_us: int) -> None:
    global _compile_cpu_us
    _compile_cpu_us += cpu_us


def _preload(clang: str) -> str:
    """The helper library, built once per source version with the lab's own clang."""
    with open(_SOURCE, "rb") as f:
        key = hashlib.sha256(f.read()).hexdigest()[:12]
    out = os.path.join(toolchain.cache_dir(), f"warm-clang-{key}.so")
    if not os.path.exists(out):
        def build(tmp):
            subprocess.run([clang, "-O2", "-shared", "-fPIC", "-o", tmp, _SOURCE, "-ldl"], check=True,
                           capture_output=True)

        toolchain.atomic_write(out, build)
    return out


def start() -> bool:
    """Start the warm process if it is not up (the first compile, or earlier to hide its start-up)."""
    global _server, _broken
    if _broken or os.environ.get("EBPF_LAB_COLD_CLANG"):
        return False
    with _lock:
        if _server is not None and _server.owner == os.getpid() and _server.proc.poll() is None:
            return True
        try:
            clang, _ = toolchain.clang()
            _server = _Server(clang, _preload(clang))
        except (OSError, subprocess.SubprocessError):
            _broken = True  # no C toolchain for the helper: cold clang from now on
            return False
    return True


def run(args: list[str], cwd: str) -> subprocess.CompletedProcess | None:
    """clang ``args`` (``args[0]`` is the program name) in ``cwd`` through the warm process; None: run it cold."""
    global _server
    if not start():
        return None
    with _lock:
        try:
            return _server.run(args, cwd)
        except OSError:
            _server.close()
            _server = None
            return None


def cpu_seconds() -> float:
    """CPU time of the compiles the warm process ran so far (not in this process's RUSAGE_CHILDREN)."""
    return _compile_cpu_us / 1e6


@atexit.register
def stop() -> None:
    global _server
    with _lock:
        if _server is not None:
            _server.close()
            _server = None
