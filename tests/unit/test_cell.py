"""Pure parsing and argument checks: no kernel, no compiler."""
from __future__ import annotations

import ctypes as ct

import pytest

from ebpf_magic import cell, validate
from ebpf_magic.attach.base import Options
from ebpf_magic.errors import BPFLabError, CompileError, UnknownSectionError, UsageError

TP = "tracepoint/syscalls/sys_enter_getpid"
PROG = "int on_getpid(void *ctx) { return 0; }"
CORE = '#include "vmlinux.h"\nSEC("tp/syscalls/sys_enter_getpid") int f(void *ctx) { return 0; }'


def test_a_good_bcc_cell_is_read_once():
    c = cell.make(PROG, TP, options=Options(), sets=None)
    assert (c.engine, c.section.name, c.fn, c.name) == ("bcc", TP, None, "on_getpid")


def test_a_good_core_cell_takes_sets_as_text():
    c = cell.make(CORE, sets=["target_pid=12", "comm = bash"])
    assert c.engine == "core" and c.sets == {"target_pid": "12", "comm": "bash"}


@pytest.mark.parametrize("kwargs, text", [
    ({"text": b"int f;", "sec": TP}, "bytes"),
    ({"text": None, "sec": TP}, "not NoneType"),
    ({"text": PROG, "sec": "two words"}, "not a SEC name"),
    ({"text": PROG, "sec": TP, "engine": "gcc"}, "not an engine"),
    ({"text": PROG, "sec": TP, "name": "import"}, "keyword"),
    ({"text": PROG, "sec": TP, "name": "ünï"}, "not an identifier"),
    ({"text": PROG, "sec": TP, "options": Options(freq=99)}, "applies to perf_event"),
    ({"text": PROG, "sec": "perf_event", "options": Options(freq=0)}, "positive"),
    ({"text": PROG, "sec": "perf_event", "options": Options(period=-1)}, "positive"),
    ({"text": PROG, "sec": "perf_event", "options": Options(event="pagefaults")}, "page-faults"),
    ({"text": PROG, "sec": "uprobe/libc.so.6:malloc", "options": Options(cpu=0)}, "applies to perf_event"),
    ({"text": CORE, "sets": ["=1"]}, "NAME=VALUE"),
    ({"text": CORE, "sets": {"a b": 1}}, "not an identifier"),
    ({"text": CORE, "options": Options(event="cpu-clock")}, "applies to perf_event"),
    ({"text": PROG, "sec": TP, "event_type": "event"}, "CO-RE"),
])
def test_make_refuses_with_a_usage_error(kwargs, text):
    with pytest.raises(UsageError) as info:
        cell.make(**kwargs)
    assert text in str(info.value) and info.value.hint


def test_unknown_sec_is_its_own_error():
    with pytest.raises(UnknownSectionError):
        cell.make(PROG, "tracepoint_x/a/b")


@pytest.mark.parametrize("values, text", [
    (["-DX", "'-DY"], "quote"),
    (["DX"], "not a compiler flag"),
])
def test_cflags(values, text):
    with pytest.raises(UsageError, match=text):
        cell.split_cflags(values)


def test_cflags_split_quoted_and_repeated():
    assert cell.split_cflags(["'-DN=4 -DM=2'", "-DK=1"]) == ("-DN=4", "-DM=2", "-DK=1")


@pytest.mark.parametrize("check, value, text", [
    (validate.check_duration, -0.5, "out of range"),
    (validate.check_duration, True, "not a number"),
    (validate.check_duration, float("inf"), "not a number"),
    (validate.check_duration, 1e9, "out of range"),
    (validate.check_max_events, 0, "positive"),
    (validate.check_max_events, "10", "positive"),
    (validate.check_max_lines, None, "positive"),
    (validate.check_page_cnt, 48, "page_cnt=32 or 64"),
    (validate.check_every, 0.0, "at least"),
    (validate.check_kind, "bar", "view"),
    (validate.check_unit, 3, "string"),
    (validate.check_name, "", "non-empty"),
])
def test_argument_checks(check, value, text):
    with pytest.raises(UsageError, match=text):
        check(value)


def test_argument_checks_pass_good_values_through():
    assert validate.check_duration(None) is None
    assert validate.check_duration(0) == 0
    assert validate.check_max_events(None) is None
    assert validate.check_page_cnt(64) == 64
    assert validate.check_kind("hist") == "hist"


class Pair(ct.Structure):
    _fields_ = [("a", ct.c_uint32), ("b", ct.c_int8)]


def test_map_values_are_range_checked_not_wrapped():
    assert validate.to_ctype(ct.c_uint32, 7, "key").value == 7
    with pytest.raises(UsageError, match="0..4294967295"):
        validate.to_ctype(ct.c_uint32, -1, "key")  # ctypes alone would store 4294967295
    with pytest.raises(UsageError, match="-128..127"):
        validate.to_ctype(ct.c_int8, 200, "value")
    assert validate.to_ctype(Pair, (1, 2), "key").b == 2
    assert validate.to_ctype(Pair, {"a": 3}, "key").a == 3
    with pytest.raises(UsageError, match="fields"):
        validate.to_ctype(Pair, "x", "key")


def test_event_type_by_engine():
    assert validate.check_event_type("event", "core") == "event"
    assert validate.check_event_type(Pair, "bcc") is Pair
    with pytest.raises(UsageError):
        validate.check_event_type(Pair, "core")
    with pytest.raises(UsageError):
        validate.check_event_type("event", "bcc")


def test_a_long_detail_is_cut_with_a_count():
    err = CompileError("x", detail="\n".join(f"line {i}" for i in range(30)), hint="h")
    lines = err._render_traceback_()
    assert len(lines) <= 12 and "23 more lines" in lines[-2]
    assert isinstance(err, BPFLabError)
