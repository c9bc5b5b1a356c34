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


COUNT = """
BPF_ARRAY(calls, u64, 1);
int seen(struct bpf_sock_addr *ctx) { int k = 0; calls.increment(k); return 1; }
"""


UNIX_CHILD = """
import json, os, socket, sys, tempfile
d = tempfile.mkdtemp()
srv = socket.socket(socket.AF_UNIX); srv.bind(os.path.join(d, "s")); srv.listen(1)
c = socket.socket(socket.AF_UNIX); c.connect(os.path.join(d, "s"))
peer, _ = srv.accept()
rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); rx.bind(os.path.join(d, "r"))
tx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); tx.bind(os.path.join(d, "t"))
for _ in range(3):
    tx.sendto(b"x", os.path.join(d, "r"))
print("ready", flush=True)
sys.stdin.readline()
# getsockname on srv: the hook runs only for a socket that has an address (c has none).
calls = {"getsockname_unix": srv.getsockname, "getpeername_unix": c.getpeername,
         "recvmsg_unix": lambda: rx.recvfrom(8)}[sys.argv[1]]
print(json.dumps([str(calls()) for _ in range(3)]), flush=True)
sys.stdin.readline()   # until the test has read the count: at exit, socket reprs call getsockname again
"""


@pytest.mark.parametrize("hook", ["getsockname_unix", "getpeername_unix", "recvmsg_unix"])
def test_unix_name_and_recvmsg_hooks_see_each_call(cg, hook):
    import json
    import subprocess
    import sys

    require("cgroup")
    with build(COUNT, _sec(f"cgroup/{hook}"), cgroup=cg) as h:
        proc = cg.popen([sys.executable, "-c", UNIX_CHILD, hook], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout.readline() == "ready\n"
        before = array(h, "calls")[0]        # setting up (connect, accept) may call the hook too
        proc.stdin.write("go\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert line.startswith("["), line + proc.stdout.read()
        assert len(json.loads(line)) == 3
        assert array(h, "calls")[0] - before == 3
        proc.stdin.write("bye\n")
        proc.stdin.flush()
        assert proc.wait(30) == 0
