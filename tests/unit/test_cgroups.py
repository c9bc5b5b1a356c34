"""Lab cgroups and the cgroup/sockmap options: the pure logic, on plain directories."""
from __future__ import annotations

import os

import pytest

from ebpf_magic import cgroups
from ebpf_magic.attach import Options
from ebpf_magic.errors import UsageError
from ebpf_magic.families import family


def test_owner_pid_is_read_from_lab_names_only():
    assert cgroups._owner("1234-7") == 1234
    assert cgroups._owner("1234") is None
    assert cgroups._owner("mine-1") is None
    assert cgroups._owner("12-x") is None


def test_sweep_removes_only_cgroups_of_dead_owners(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroups, "lab_parent", lambda: str(tmp_path))
    dead = 2 ** 22 + 1                       # above pid_max's default: no such process
    assert not os.path.exists(f"/proc/{dead}")
    for name in (f"{dead}-1", f"{dead}-2/child", f"{os.getpid()}-1", "notes"):
        (tmp_path / name).mkdir(parents=True)
    removed = cgroups.sweep()
    assert sorted(removed) == [str(tmp_path / f"{dead}-1"), str(tmp_path / f"{dead}-2")]
    assert sorted(os.listdir(tmp_path)) == sorted([f"{os.getpid()}-1", "notes"])
    assert cgroups.lab_cgroups(os.getpid()) == [str(tmp_path / f"{os.getpid()}-1")]


def test_resolve_prefers_a_notebook_variable_then_a_path():
    cg = object.__new__(cgroups.LabCgroup)
    cg.path, cg.name, cg._fd = "/nowhere", "box", 99
    assert cgroups.resolve("box", {"box": cg}) is cg
    assert cgroups.resolve(cg) is cg
    assert cgroups.resolve(None) is None
    assert cgroups.resolve("/sys/fs/cgroup/x", {"box": cg}) == "/sys/fs/cgroup/x"


@pytest.mark.parametrize("spec", ["est:sock hash", "a:b:c", "1x", "est:"])
def test_map_option_must_be_handle_colon_map(spec):
    with pytest.raises(UsageError, match="HANDLE:MAP"):
        Options(map=spec).check()


@pytest.mark.parametrize("spec", ["est:sock_hash", "socks"])
def test_map_option_accepts_handle_map_and_own_map(spec):
    Options(map=spec).check()


def test_cgroup_option_refuses_a_directory_outside_cgroup2(tmp_path):
    with pytest.raises(UsageError, match="neither a lab cgroup nor a cgroup v2 directory"):
        Options(cgroup=str(tmp_path)).check()


def test_registry_names_the_attachers():
    for name, attacher in (("cgroup", "cgroup:cgroup"), ("sockops", "cgroup:cgroup"),
                           ("sk_msg", "sockmap:sockmap"), ("sk_skb", "sockmap:sockmap")):
        assert family(name).attacher == attacher
        assert callable(family(name).attach_function())


def test_sk_skb_hook_comes_from_the_sec_name():
    from ebpf_magic.attach.sockmap import _attach_type
    from ebpf_magic.sections import resolve
    from ebpf_magic.uapi import AttachType

    assert _attach_type(resolve("sk_skb/stream_parser")) == AttachType.SK_SKB_STREAM_PARSER
    assert _attach_type(resolve("sk_skb/stream_verdict")) == AttachType.SK_SKB_STREAM_VERDICT
    assert _attach_type(resolve("sk_msg")) == AttachType.SK_MSG_VERDICT
