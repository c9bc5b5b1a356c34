"""What the cgroup and sockmap live tests share: lab cgroups, servers on loopback, child scripts."""
from __future__ import annotations

import itertools
import json
import socket
import sys
import textwrap
import threading

import pytest

from ebpf_magic import attach, cgroups, loader

HOSTS = {4: "127.0.0.1", 6: "::1"}
FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}


@pytest.fixture
def cg(live):
    """A fresh lab cgroup, removed after the test (the live fixture checks nothing is left)."""
    name = f"t{next(_names)}"
    c = cgroups.lab_cgroup(name)
    yield c
    cgroups.close_lab_cgroup(name)


_names = itertools.count(1)


def build(cell, sec=None, **options):
    kw = {k: options.pop(k) for k in ("name", "engine", "fn", "cflags") if k in options}
    return loader.build(cell, sec, options=attach.Options(**options), **kw)


def run_py(cg, code: str, **kw) -> dict:
    """Run Python code inside the cgroup; it prints one JSON object as its last line."""
    out = cg.run([sys.executable, "-c", textwrap.dedent(code)], **kw)
    return json.loads(out.strip().splitlines()[-1])


def free_port(version: int = 4, kind=socket.SOCK_STREAM) -> int:
    with socket.socket(FAMILY[version], kind) as s:
        s.bind((HOSTS[version], 0))
        return s.getsockname()[1]


class TcpServer:
    """A loopback listener (in the test process, outside the lab cgroup) that answers every client with its tag."""

    def __init__(self, tag: bytes, version: int = 4):
        self.sock = socket.socket(FAMILY[version], socket.SOCK_STREAM)
        self.sock.bind((HOSTS[version], 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.tag, self.accepted = tag, 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.sendall(self.tag)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(10)


@pytest.fixture
def servers():
    made = []

    def make(tag: bytes, version: int = 4) -> TcpServer:
        made.append(TcpServer(tag, version))
        return made[-1]

    yield make
    for s in made:
        s.close()


def array(h, name: str) -> list[int]:
    """An array map as a list of its values, whichever engine built the handle."""
    df = h[name].to_frame().sort_values("key")
    return [int(v) for v in df["value"]]
