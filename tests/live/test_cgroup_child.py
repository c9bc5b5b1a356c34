"""LabCgroup.child(): a cgroup inside a lab cgroup runs its ancestors' programs and goes when its parent closes."""
from __future__ import annotations

import os

import pytest

from tests.conftest import require
from tests.live.cgroup_helpers import build, cg, run_py, servers
from tests.live.test_cgroup import connect_child
from tests.live.test_cgroup_lifecycle import wait_for

pytestmark = pytest.mark.live
FIXTURES = (cg, servers,)   # imported fixtures: pytest finds them by name


def test_a_child_runs_the_parents_program_then_its_own_and_closes_with_the_parent(cg, servers):
    require("cgroup")
    a = servers(b"A")
    web = cg.child("web")
    assert os.path.dirname(web.path) == cg.path and web.id != cg.id
    line = web.run("cat /proc/self/cgroup")
    assert f"0::{web.path[len(os.path.dirname(os.path.dirname(cg.path))):]}" in line.splitlines()
    counter = """
BPF_ARRAY(calls, u64, 1);
int counter(struct bpf_sock_addr *ctx) { int k = 0; calls.increment(k); return 1; }"""
    deny = "int deny(struct bpf_sock_addr *ctx) { return 0; }"
    with build(deny, "cgroup/connect4", cgroup=cg), build(counter, "cgroup/connect4", cgroup=web) as c:
        assert run_py(web, connect_child(4, [a.port])) == ["EPERM"]   # the child's own program ran too
        assert [int(v) for v in c["calls"].to_frame()["value"]] == [1]
    assert run_py(web, connect_child(4, [a.port])) == ["A"]
    sleeper = web.popen(["sleep", "600"])
    wait_for(lambda: sleeper.pid in web.pids(), "the sleeper to join the child cgroup")
    cg.close()
    assert web.closed and not os.path.exists(web.path) and not os.path.exists(cg.path)
    assert sleeper.wait(30) == -9
