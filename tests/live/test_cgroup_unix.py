"""The AF_UNIX cgroup hooks of libbpf 1.4 (cgroup/connect_unix, sendmsg_unix, ...; Linux 6.7)."""
from __future__ import annotations

import pytest

from tests.conftest import require
from tests.live.cgroup_helpers import array, build, cg, run_py

pytestmark = pytest.mark.live
FIXTURES = (cg,)   # imported fixtures: pytest finds them by name

COUNT_AND_DENY = """
BPF_ARRAY(calls, u64, 1);
int deny(struct bpf_sock_addr *ctx) { int k = 0; calls.increment(k); return 0; }
"""


def _sec(name: str) -> str:
    from ebpf_magic.sections import resolve

    try:
        resolve(name)
    except ValueError:
        pytest.skip(f"the SEC table lacks {name} (libbpf 1.4's rows are merged separately)")
    return name


def test_connect_unix_is_denied_with_eperm(cg):
    require("cgroup")
    with build(COUNT_AND_DENY, _sec("cgroup/connect_unix"), cgroup=cg) as h:
        out = run_py(cg, """
            import errno, json, os, socket, tempfile
            path = os.path.join(tempfile.mkdtemp(), "s")
            srv = socket.socket(socket.AF_UNIX); srv.bind(path); srv.listen(1)
            res = []
            for _ in range(2):
                c = socket.socket(socket.AF_UNIX)
                try:
                    c.connect(path); res.append("connected")
                except OSError as e:
                    res.append(errno.errorcode[e.errno])
            print(json.dumps(res))""")
        assert out == ["EPERM", "EPERM"]
        assert array(h, "calls") == [2]


def test_sendmsg_unix_is_denied_with_eperm(cg):
    require("cgroup")
    with build(COUNT_AND_DENY, _sec("cgroup/sendmsg_unix"), cgroup=cg) as h:
        out = run_py(cg, """
            import errno, json, os, socket, tempfile
            path = os.path.join(tempfile.mkdtemp(), "d")
            rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); rx.bind(path)
            tx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                tx.sendto(b"hi", path); r = "sent"
            except OSError as e:
                r = errno.errorcode[e.errno]
            print(json.dumps(r))""")
        assert out == "EPERM"
        assert array(h, "calls") == [1]
