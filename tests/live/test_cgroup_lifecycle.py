"""Lab cgroups: processes in them, removal on close and at exit, the sweep after a kill -9, %bpf_cgroup."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ebpf_magic import cgroups
from ebpf_magic.errors import BPFLabError
from tests.conftest import require
from tests.live.cgroup_helpers import build, cg, run_py, servers
from tests.live.test_cgroup import connect_child

pytestmark = pytest.mark.live
FIXTURES = (cg, servers,)   # imported fixtures: pytest finds them by name


def wait_for(cond, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def link_ids() -> set[int]:
    out = subprocess.run(["bpftool", "-j", "link", "list"], capture_output=True, text=True, check=True)
    return {link["id"] for link in json.loads(out.stdout or "[]")}


def test_run_popen_and_close_kill_processes_and_remove_the_directory(live):
    c = cgroups.lab_cgroup("life")
    assert c.path.startswith(os.path.join(cgroups.cgroup2_root(), "ebpf-lab", f"{os.getpid()}-"))
    assert c.run("cat /proc/self/cgroup").strip().endswith(c.path[len(cgroups.cgroup2_root()):])
    assert c.run(["echo", "hi"]) == "hi\n"
    sleeper = c.popen(["sleep", "600"])
    wait_for(lambda: sleeper.pid in c.pids(), "the sleeper to show in cgroup.procs")
    assert cgroups.lab_cgroup("life") is c          # the same name: the same cgroup
    with pytest.raises(BPFLabError, match="exited with status 3"):
        c.run("exit 3")
    assert cgroups.close_lab_cgroup("life")
    assert sleeper.wait(30) == -signal.SIGKILL
    assert not os.path.exists(c.path)
    with pytest.raises(BPFLabError, match="closed"):
        c.run(["true"])


def test_closing_a_lab_cgroup_detaches_the_programs_on_it_first(live, servers):
    from ebpf_magic.session import SESSION

    c = cgroups.lab_cgroup("pol")
    srv = servers(b"A")
    cell = "int deny(struct bpf_sock_addr *ctx) { return 0; }"
    h = SESSION.replace("deny", lambda: build(cell, "cgroup/connect4", cgroup=c))
    assert h.uses(c)
    assert run_py(c, connect_child(4, [srv.port])) == ["EPERM"]
    c.close()                                        # by hand: the session's program goes first
    assert not h.attached and "deny" not in SESSION
    assert not os.path.exists(c.path)
    again = cgroups.lab_cgroup("pol")                # a closed one is replaced, not returned
    assert again is not c and not again.closed
    assert run_py(again, connect_child(4, [srv.port])) == ["A"]


def test_own_cgroup_path_is_accepted(live, cg, servers):
    srv = servers(b"A")
    own = os.path.join(cg.path, "mine")              # not a lab cgroup: a directory the learner made
    os.mkdir(own)
    cell = "BPF_ARRAY(calls, u64, 1);\nint deny(struct bpf_sock_addr *ctx) { int k = 0; calls.increment(k); return 0; }"
    relative = own[len(cgroups.cgroup2_root()) + 1:]
    with build(cell, "cgroup/connect4", cgroup=relative) as h:
        assert h.attachments[0].point == own
        code = f"import os; open('{own}/cgroup.procs', 'w').write(str(os.getpid())); " + connect_child(4, [srv.port])
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert json.loads(out) == ["EPERM"]
        assert int(h["calls"].to_frame()["value"].sum()) == 1
    from ebpf_magic.errors import UsageError

    with pytest.raises(UsageError, match="neither a lab cgroup nor a cgroup v2 directory"):
        build(cell, "cgroup/connect4", cgroup="/tmp")


KILLED = """
import json, os, sys, time
from ebpf_magic import attach, cgroups, loader
cg = cgroups.lab_cgroup("victim")
h = loader.build("int deny(struct bpf_sock_addr *ctx) { return 0; }", "cgroup/connect4",
                 options=attach.Options(cgroup=cg))
sleeper = cg.popen(["sleep", "600"])
print(json.dumps({"path": cg.path, "link": int(open(f"/proc/self/fdinfo/{h.attachments[0].fd}").read()
                  .split("link_id:")[1].split()[0]), "sleeper": sleeper.pid}), flush=True)
time.sleep(600)
"""


def test_kill_9_leaves_at_most_an_empty_cgroup_that_the_sweep_removes(live):
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED)], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    info = json.loads(proc.stdout.readline())
    assert info["link"] in link_ids()
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    wait_for(lambda: info["link"] not in link_ids(), "the killed kernel's link to go")
    wait_for(lambda: not cgroups._populated(info["path"]), "the killed kernel's sleeper to die with it")
    assert os.path.isdir(info["path"])                # what is left: one empty directory
    assert info["path"] in cgroups.sweep()
    assert not os.path.exists(info["path"])


def test_bpf_cgroup_magic_and_cgroup_by_variable_or_name(ip, servers):
    require("cgroup")
    srv = servers(b"A")
    web = ip.run_line_magic("bpf_cgroup", "web")
    assert isinstance(web, cgroups.LabCgroup) and ip.run_line_magic("bpf_cgroup", "web") is web
    ip.user_ns["box"] = web
    cell = "BPF_ARRAY(calls, u64, 1);\nint deny(struct bpf_sock_addr *ctx) { int k = 0; calls.increment(k); return 0; }"
    by_var = ip.run_cell_magic("bpf", "cgroup/connect4 --cgroup box -n by_var", cell)
    by_name = ip.run_cell_magic("bpf", "cgroup/connect4 --cgroup web -n by_name", cell)
    assert run_py(web, connect_child(4, [srv.port])) == ["EPERM"]
    assert [int(h["calls"].to_frame()["value"].sum()) for h in (by_var, by_name)] == [1, 1]
    listed = ip.run_line_magic("bpf_cgroup", "--list")
    assert listed.loc[listed["path"] == web.path, "programs"].item() == "by_var, by_name"
    ip.run_line_magic("bpf_cgroup", "web --close")
    assert not by_var.attached and not by_name.attached and not os.path.exists(web.path)
    with pytest.raises(BPFLabError, match="no lab cgroup"):
        ip.run_line_magic("bpf_cgroup", "web --close")
