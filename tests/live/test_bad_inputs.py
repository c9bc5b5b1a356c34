"""Bad input everywhere: each case is a short BPFLabError, renders in a few lines and leaves nothing held.

One table: the %%bpf line and cell in both engines, ``--set`` against every
kind of global, the line magics, and every handle method of a BCC and a
CO-RE handle (loaded once for the module, outside the lab session).
"""
from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from ebpf_magic.errors import (
    AttachError,
    BPFLabError,
    CompileError,
    MapError,
    UnknownSectionError,
    UsageError,
)
from tests.conftest import held_prog_ids, require

pytestmark = pytest.mark.live

TP = "tracepoint/syscalls/sys_enter_getpid"
NO_PID = 999999

BCC_CELL = textwrap.dedent("""\
    BPF_HASH(counts, u32, u64);
    BPF_HISTOGRAM(dist);
    BPF_RINGBUF_OUTPUT(events, 8);
    struct event { u32 pid; char comm[16]; };
    int on_getpid(void *ctx) {
        u32 pid = bpf_get_current_pid_tgid() >> 32;
        counts.increment(pid);
        dist.increment(bpf_log2l(pid));
        struct event e = {.pid = pid};
        bpf_get_current_comm(&e.comm, sizeof(e.comm));
        events.ringbuf_output(&e, sizeof(e), 0);
        return 0;
    }""")

CORE_HEAD = '#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n'
CORE_CELL = CORE_HEAD + textwrap.dedent("""\
    enum mode { MODE_OFF = 0, MODE_COUNT = 1, MODE_TRACE = 2 };
    struct pair { int a; int b; };
    struct event { u32 pid; };
    const volatile s8 g_s8 = 0;
    const volatile u8 g_u8 = 0;
    const volatile s16 g_s16 = 0;
    const volatile u16 g_u16 = 0;
    const volatile int target_pid = 0;
    const volatile u32 g_u32 = 0;
    const volatile s64 g_s64 = 0;
    const volatile u64 g_u64 = 0;
    const volatile char g_char = 'a';
    const volatile char comm[8] = "";
    const volatile bool verbose = false;
    const volatile enum mode mode = MODE_OFF;
    const volatile int limits[4] = {};
    const volatile struct pair pair = {};
    const int folded = 3;
    u64 hits = 1;
    u64 zeroed;
    extern u32 LINUX_KERNEL_VERSION __kconfig;
    struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64);
             __type(key, u32); __type(value, u64); } counts SEC(".maps");
    struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } events SEC(".maps");

    SEC("tracepoint/syscalls/sys_enter_getpid")
    int on_getpid(void *ctx) {
        u32 pid = bpf_get_current_pid_tgid() >> 32;
        if (target_pid && pid != (u32)target_pid) return 0;
        if (LINUX_KERNEL_VERSION == 1) zeroed++;
        if (mode == MODE_OFF && !verbose && folded) __sync_fetch_and_add(&hits, 1);
        u64 one = 1;
        bpf_map_update_elem(&counts, &pid, &one, BPF_ANY);
        struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
        if (e) { e->pid = pid; bpf_ringbuf_submit(e, 0); }
        return 0;
    }
    char LICENSE[] SEC("license") = "GPL";
    """)

# 20 distinct errors: clang and BCC stop after a few, the lab shows 6 and counts the rest.
MANY_ERRORS = "\n".join(f"int f{i}(void *ctx) {{ return undeclared_{i}; }}" for i in range(20))
CORE_ERRORS = "\n".join(f'SEC("tp/syscalls/sys_enter_getpid") int f{i}(void *ctx) {{ return undeclared_{i}; }}'
                        for i in range(20))
SK_LOOKUP = "int f(struct bpf_sk_lookup *ctx) { return SK_PASS; }"
DISSECTOR = "int f(struct __sk_buff *skb) { return BPF_OK; }"
REUSEPORT = "int f(struct sk_reuseport_md *md) { return SK_PASS; }"


@dataclass
class Case:
    id: str
    run: Callable
    exc: type
    text: str


@dataclass
class Ctx:
    ip: object
    bcc: object
    core: object
    gone: object        # a CO-RE handle already detached


def bpf(line: str, cell: str = BCC_CELL):
    return lambda c: c.ip.run_cell_magic("bpf", line, cell)


def tp(line: str = ""):
    return bpf(f"{TP} {line}")


def core(line: str, cell: str = CORE_CELL):
    return bpf(f"-n badcore {line}", cell)


def sets(*items: str):
    return core(" ".join(f"--set {s}" for s in items))


def magic(name: str, line: str):
    return lambda c: c.ip.run_line_magic(name, line)


def both(id_: str, call: Callable, exc: type, text: str, engines=("bcc", "core")) -> list[Case]:
    """The same handle call on the BCC and the CO-RE handle."""
    return [Case(f"{e}-{id_}", (lambda c, e=e: call(getattr(c, e))), exc, text) for e in engines]


def build(text, sec=None, **kw):
    from ebpf_magic import loader

    return loader.build(text, sec, **kw)


def setitem(h, key, value):
    h["counts"][key] = value


def delitem(h, key):
    del h["counts"][key]


CASES: list[Case] = [
    # --- the cell ---------------------------------------------------------------------------------
    # IPython answers a body of exactly "" itself (a one-line UsageError); the lab sees every other one.
    Case("empty-cell", lambda c: build("", TP), UsageError, "empty"),
    Case("newline-cell", bpf(TP, "\n"), UsageError, "empty"),
    Case("blank-cell", bpf(TP, "  \n\t \n"), UsageError, "empty"),
    Case("binary-cell", bpf(TP, "\x7fELF\x02\x01\x01\x00\x00"), UsageError, "binary"),
    Case("escape-codes-in-cell", bpf(TP, "int f(void *ctx) { return 0; }\x1b[31m\x07"), UsageError, "binary"),
    Case("bcc-no-sec", bpf("", "int f(void *ctx) { return 0; }"), UsageError, "no SEC"),
    Case("bcc-two-secs", bpf("--engine bcc", 'SEC("xdp") int a(void *c) { return 0; }\n'
                                             'SEC("tc") int b(void *c) { return 0; }'), UsageError, "--fn"),
    Case("unknown-sec", bpf("tracepointt/syscalls/sys_enter_getpid"), UnknownSectionError, "tracepoint"),
    Case("unknown-sec-annotation", bpf("", 'SEC("kprobez/do_sys_open") int f(void *c) { return 0; }'),
         UnknownSectionError, "kprobe"),
    Case("bcc-long-compile-error", bpf(TP, MANY_ERRORS), CompileError, "more errors"),
    # --- names -----------------------------------------------------------------------------------
    Case("name-starts-with-digit", tp("-n 1bad"), UsageError, "not an identifier"),
    Case("name-keyword", tp("-n class"), UsageError, "keyword"),
    Case("name-with-dash", tp("-n my-prog"), UsageError, "not an identifier"),
    Case("name-non-ascii", tp("-n prög"), UsageError, "not an identifier"),
    Case("fn-not-identifier", tp("--fn 9f"), UsageError, "not an identifier"),
    Case("fn-not-in-cell", tp("--fn on_getpidd"), BPFLabError, "on_getpid"),
    # --- options ---------------------------------------------------------------------------------
    Case("pid-not-a-number", bpf("perf_event --pid abc"), UsageError, "invalid int value"),
    Case("pid-missing-process", bpf(f"perf_event --pid {NO_PID}"), UsageError, "no such process"),
    Case("uprobe-pid-missing-process", bpf(f"uprobe/libc.so.6:malloc --pid {NO_PID}"), UsageError,
         "no such process"),
    Case("pid-zero", bpf("perf_event --pid 0"), UsageError, "positive"),
    Case("pid-negative", bpf("perf_event --pid -3"), UsageError, "positive"),
    Case("freq-negative", bpf("perf_event --freq -5"), UsageError, "positive"),
    Case("freq-not-whole", bpf("perf_event --freq 9.5"), UsageError, "invalid int value"),
    Case("freq-and-period", bpf("perf_event --freq 10 --period 100"), UsageError, "not both"),
    Case("cpu-out-of-range", bpf("perf_event --cpu 99"), UsageError, "not a CPU"),
    Case("cpu-negative", bpf("perf_event --cpu -1"), UsageError, "not a CPU"),
    Case("perf-event-typo", bpf("perf_event --event cyclez"), UsageError, "cycles"),
    Case("freq-on-tracepoint", tp("--freq 99"), UsageError, "applies to perf_event"),
    Case("pid-on-tracepoint", tp("--pid 1"), UsageError, "applies to"),
    Case("engine-unknown", tp("--engine llvm"), UsageError, "invalid choice"),
    Case("option-unknown", tp("--frobnicate"), UsageError, "unrecognized"),
    Case("line-unbalanced-quote", tp("-n 'oops"), UsageError, "quotation"),
    Case("two-secs-on-line", bpf(f"{TP} raw_tp/sched_switch"), UsageError, "unrecognized"),
    Case("set-on-bcc-cell", tp("--set x=1"), UsageError, "BCC cell has none"),
    Case("cflags-not-a-flag", tp("--cflags DFOO"), UsageError, "not a compiler flag"),
    Case("event-type-on-bcc-cell", tp("--event-type event"), UsageError, "CO-RE"),
    # --- CO-RE cells -----------------------------------------------------------------------------
    Case("core-sec-on-magic-line", bpf(f"{TP} --engine core", CORE_CELL), UsageError, "drop the SEC"),
    Case("core-fn", core("--fn on_getpid"), UsageError, "--fn picks"),
    Case("core-without-sec", bpf("--engine core", CORE_HEAD + "int f(void *ctx) { return 0; }"),
         UsageError, "needs SEC"),
    Case("core-unknown-sec", core("", CORE_HEAD + 'SEC("tracepoint_x/a/b") int f(void *c) { return 0; }'),
         UnknownSectionError, "tracepoint"),
    Case("core-freq-on-tracepoint", core("--freq 99"), UsageError, "applies to perf_event"),
    Case("core-event-type-not-identifier", core("--event-type 3x"), UsageError, "not an identifier"),
    Case("core-event-type-unknown", core("--event-type nosuch"), UsageError, "no such type"),
    Case("core-long-compile-error", core("", CORE_HEAD + CORE_ERRORS), CompileError, "more errors"),
    # --- --set, checked against each global's BTF type before load -----------------------------
    Case("set-no-equals", sets("target_pid"), UsageError, "NAME=VALUE"),
    Case("set-twice", sets("target_pid=1", "target_pid=2"), UsageError, "twice"),
    Case("set-name-not-identifier", sets("1x=2"), UsageError, "not an identifier"),
    Case("set-not-a-global", sets("nosuch=1"), UsageError, "no such global"),
    Case("set-int-abc", sets("target_pid=abc"), UsageError, "not a whole number"),
    Case("set-int-fraction", sets("target_pid=1.5"), UsageError, "not a whole number"),
    Case("set-int-empty", sets("target_pid="), UsageError, "not a whole number"),
    Case("set-int-too-big", sets("target_pid=2147483648"), UsageError, "-2147483648 to 2147483647"),
    Case("set-s8-too-big", sets("g_s8=128"), UsageError, "-128 to 127"),
    Case("set-s8-too-small", sets("g_s8=-129"), UsageError, "-128 to 127"),
    Case("set-u8-negative", sets("g_u8=-1"), UsageError, "0 to 255"),
    Case("set-u8-too-big", sets("g_u8=256"), UsageError, "0 to 255"),
    Case("set-s16-too-big", sets("g_s16=40000"), UsageError, "-32768 to 32767"),
    Case("set-u16-too-big", sets("g_u16=65536"), UsageError, "0 to 65535"),
    Case("set-u32-negative", sets("g_u32=-1"), UsageError, "0 to 4294967295"),
    Case("set-u32-too-big", sets("g_u32=0x100000000"), UsageError, "0 to 4294967295"),
    Case("set-s64-too-big", sets("g_s64=9223372036854775808"), UsageError, "9223372036854775807"),
    Case("set-u64-negative", sets("g_u64=-1"), UsageError, "18446744073709551615"),
    Case("set-u64-garbage", sets("g_u64=12abc"), UsageError, "not a whole number"),
    Case("set-char-two-letters", sets("g_char=ab"), UsageError, "one character"),
    Case("set-char-array-too-long", sets("comm=abcdefgh"), UsageError, "at most 7 bytes"),
    Case("set-bool-maybe", sets("verbose=maybe"), UsageError, "true"),
    Case("set-enum-unknown-name", sets("mode=MODE_FAST"), UsageError, "MODE_COUNT"),
    Case("set-enum-number-too-big", sets("mode=0x100000000"), UsageError, "does not fit"),
    Case("set-array", sets("limits=1"), UsageError, "an array"),
    Case("set-struct", sets("pair=1"), UsageError, "a struct"),
    Case("set-const-not-volatile", sets("folded=1"), UsageError, "const volatile"),
    Case("set-a-map", sets("counts=1"), UsageError, "a map"),
    Case("set-kconfig-extern", sets("LINUX_KERNEL_VERSION=1"), UsageError, "extern the kernel fills"),
    # --- namespace-attached families (sk_lookup, flow_dissector, sk_reuseport) ----------------------
    Case("netns-on-tracepoint", tp("--netns b"), UsageError, "applies to sk_lookup"),
    Case("real-netns-without-netns", bpf("sk_lookup --real-netns", SK_LOOKUP), UsageError, "there is no --netns"),
    Case("sk_lookup-without-netns", bpf("sk_lookup", SK_LOOKUP), AttachError, "names none"),
    Case("sk_lookup-netns-unknown-host", bpf("sk_lookup --netns zz", SK_LOOKUP), AttachError, "no lab host 'zz'"),
    Case("sk_lookup-netns-self", bpf("sk_lookup --netns self", SK_LOOKUP), AttachError, "add --real-netns"),
    Case("flow_dissector-netns-path", bpf("flow_dissector --netns /proc/1/ns/net", DISSECTOR), AttachError,
         "add --real-netns"),
    Case("real-netns-not-a-netns", bpf("flow_dissector --netns /proc/self/ns/mnt --real-netns", DISSECTOR),
         AttachError, "not a network namespace"),
    Case("sockets-on-sk_lookup", bpf("sk_lookup --netns b --sockets 2", SK_LOOKUP), UsageError,
         "applies to sk_reuseport"),
    Case("sockets-zero", bpf("sk_reuseport --netns b --sockets 0", REUSEPORT), UsageError, "from 1 to 64"),
    *both("put-socket-not-a-sockmap", lambda h: h.put_socket("counts", 0, 0), MapError, "not a sockmap"),
    *both("test-run-tracepoint", lambda h: h.test_run(b"\0" * 64), UsageError, "flow_dissector"),
    # --- line magics ------------------------------------------------------------------------------
    Case("bpf_sec-nothing", magic("bpf_sec", ""), UsageError, "one name"),
    Case("bpf_sec-two-names", magic("bpf_sec", "xdp tc"), UsageError, "got 2"),
    Case("bpf_sec-unknown", magic("bpf_sec", "tracepointz/a/b"), UnknownSectionError, "tracepoint"),
    Case("bpf_sec-unbalanced-quote", magic("bpf_sec", "'xdp"), UsageError, "quotation"),
    Case("bpf_features-argument", magic("bpf_features", "all"), UsageError, "no arguments"),
    Case("bpf_list-argument", magic("bpf_list", "x"), UsageError, "no arguments"),
    Case("bpf_detach-unknown", magic("bpf_detach", "ghost"), UsageError, "nothing named 'ghost'"),
    Case("bpf_detach-nothing", magic("bpf_detach", ""), UsageError, "--all"),
    Case("bpf_detach-name-and-all", magic("bpf_detach", "x --all"), UsageError, "not both"),
    Case("bpf_detach-unknown-option", magic("bpf_detach", "--force"), UsageError, "unrecognized"),
    # --- handle methods, both engines ----------------------------------------------------------
    *both("map-unknown", lambda h: h["nosuch"], MapError, "its maps"),
    *both("map-typo", lambda h: h["count"], MapError, "did you mean 'counts'"),
    *both("map-not-a-string", lambda h: h[3], UsageError, "string"),
    *both("hist-unknown", lambda h: h.hist("nosuch"), MapError, "nosuch"),
    *both("hist-unit-not-text", lambda h: h.hist("counts", unit=5), UsageError, "unit"),
    *both("events-unknown-map", lambda h: h.events("nosuch", duration=0), MapError, "its maps"),
    *both("events-not-a-buffer", lambda h: h.events("counts", duration=0), MapError, "ring buffer"),
    *both("events-negative-duration", lambda h: h.events("events", duration=-1), UsageError, "duration"),
    *both("events-duration-text", lambda h: h.events("events", duration="2"), UsageError, "seconds"),
    *both("events-duration-nan", lambda h: h.events("events", duration=float("nan")), UsageError, "seconds"),
    *both("events-max-events-zero", lambda h: h.events("events", 0, max_events=0), UsageError, "max_events"),
    *both("events-max-events-fraction", lambda h: h.events("events", 0, max_events=1.5), UsageError,
          "whole number"),
    *both("events-page-cnt-not-power-of-two", lambda h: h.events("events", 0, page_cnt=3), UsageError,
          "power of two"),
    *both("events-event-type-wrong-kind", lambda h: h.events("events", 0, event_type=5), UsageError,
          "event_type"),
    Case("core-events-event-type-unknown", lambda c: c.core.events("events", 0, event_type="nosuch"), MapError,
         "no type 'nosuch'"),
    *both("live-kind-unknown", lambda h: h.live("counts", kind="table", duration=0), UsageError, "kind"),
    *both("live-every-zero", lambda h: h.live("counts", every=0, duration=0), UsageError, "every"),
    *both("live-negative-duration", lambda h: h.live("counts", duration=-1), UsageError, "duration"),
    *both("live-unknown-map", lambda h: h.live("nosuch", duration=0), MapError, "its maps"),
    *both("trace_lines-negative-duration", lambda h: h.trace_lines(duration=-1), UsageError, "duration"),
    *both("trace_lines-max-lines-zero", lambda h: h.trace_lines(0, max_lines=0), UsageError, "max_lines"),
    *both("read-not-an-iterator", lambda h: h.read(), MapError, "iterator"),
    Case("bcc-write-key-text", lambda c: setitem(c.bcc, "abc", 1), UsageError, "not a whole number"),
    Case("bcc-write-key-negative", lambda c: setitem(c.bcc, -1, 1), UsageError, "0..4294967295"),
    Case("bcc-write-value-too-big", lambda c: setitem(c.bcc, 1, 1 << 64), UsageError, "0..18446744073709551615"),
    Case("bcc-write-value-fraction", lambda c: setitem(c.bcc, 1, 1.5), UsageError, "whole number"),
    Case("bcc-write-ring-buffer", lambda c: c.bcc["events"].__setitem__(0, 1), MapError, "Python only reads"),
    Case("bcc-delete-missing-key", lambda c: delitem(c.bcc, 123456), MapError, "no such key"),
    Case("core-write", lambda c: setitem(c.core, 1, 1), MapError, "read-only"),
    Case("core-delete", lambda c: delitem(c.core, 1), MapError, "read-only"),
    Case("detached-map", lambda c: c.gone["counts"], MapError, "detached"),
    Case("detached-events", lambda c: c.gone.events("events", 0), MapError, "detached"),
    Case("detached-trace-lines", lambda c: c.gone.trace_lines(0), MapError, "detached"),
]


def test_the_table_is_big_enough():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def handles():
    """A BCC and a CO-RE handle, loaded outside the session so each case's clean-up leaves them be."""
    require("tracepoint")
    from ebpf_magic import loader

    before = held_prog_ids()
    bcc = loader.build(BCC_CELL, TP, name="bad_bcc")
    try:
        gone = loader.build(CORE_CELL, name="bad_gone")
        gone.detach()
        core_h = loader.build(CORE_CELL, name="bad_core")
    except BaseException:
        bcc.detach()
        raise
    yield bcc, core_h, gone
    bcc.detach()
    core_h.detach()
    assert held_prog_ids() <= before


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, handles, ip):
    ctx = Ctx(ip, *handles)
    held = held_prog_ids()
    fds = []
    for _ in range(2):  # the second identical failure shows whether the first left an fd behind
        with pytest.raises(BaseException) as info:
            case.run(ctx)
        fds.append(_fds())
        assert held_prog_ids() == held, f"{case.id} left a program loaded"
    err = info.value
    assert isinstance(err, BPFLabError), f"{case.id}: raw {type(err).__name__}: {err}"
    assert isinstance(err, case.exc), f"{case.id}: {type(err).__name__}, expected {case.exc.__name__}: {err}"
    assert case.text in str(err), f"{case.id}: {case.text!r} not in:\n{err}"
    rendered = err._render_traceback_()
    assert 1 <= len(rendered) <= 12, "\n".join(rendered)
    assert err.hint, f"{case.id}: no hint on what to try"
    assert fds[1] == fds[0], f"{case.id} leaks file descriptors: {fds}"


def test_set_values_that_fit_reach_the_program(ip):
    """The other side of the --set cases: each kind of value that fits is written before load."""
    line = ("-n goodset --set mode=MODE_TRACE --set verbose=yes --set comm=bash --set g_s8=-128 "
            "--set g_u64=0xffffffffffffffff --set g_char=z --set g_u16=0x10 --set hits=7 --set target_pid=007 --set zeroed=5")
    g = ip.run_cell_magic("bpf", line, CORE_CELL).globals
    assert g["mode"] in ("MODE_TRACE", 2)
    assert (g["verbose"], g["comm"], g["g_s8"], g["g_u64"]) == (True, "bash", -128, (1 << 64) - 1)
    assert (g["g_char"], g["g_u16"], g["hits"], g["target_pid"], g["zeroed"]) == (ord("z"), 16, 7, 7, 5)
    by_number = ip.run_cell_magic("bpf", "-n goodset --set mode=1", CORE_CELL).globals
    assert by_number["mode"] in ("MODE_COUNT", 1)
