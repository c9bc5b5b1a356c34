"""The handle's readers and the line magics, through IPython as a learner uses them."""
from __future__ import annotations

import os
import time

import pytest

from ebpf_magic.errors import MapError

pytestmark = pytest.mark.live


def test_handle_hist_events_trace_lines_and_repr(ip, tmp_path):
    cell = r"""
struct event { u32 pid; u32 ret; char comm[16]; };
BPF_RINGBUF_OUTPUT(events, 64);
BPF_HISTOGRAM(dist);
int on_exit(struct trace_event_raw_sys_exit *ctx) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (pid != TARGET || ctx->ret <= 0) return 0;
    dist.increment(bpf_log2l(ctx->ret));
    struct event e = {.pid = pid, .ret = ctx->ret};
    bpf_get_current_comm(&e.comm, sizeof(e.comm));
    events.ringbuf_output(&e, sizeof(e), 0);
    bpf_trace_printk("lab read %d\n", ctx->ret);
    return 0;
}""".replace("TARGET", str(os.getpid()))
    h = ip.run_cell_magic("bpf", "tracepoint/syscalls/sys_exit_read -n reads", cell)
    path = tmp_path / "blob"
    path.write_bytes(b"y" * 5000)
    for _ in range(9):
        with open(path, "rb", buffering=0) as f:
            f.read(5000)
    hist = h.hist("dist")
    row = hist[(hist.low <= 5000) & (hist.high >= 5000)]
    assert int(row["count"].iloc[0]) >= 9
    events = h.events("events", duration=0.2)
    mine = events[events.ret == 5000]
    assert len(mine) >= 9
    assert set(mine.pid) == {os.getpid()}
    with open("/proc/self/comm") as f:
        assert set(mine.comm) == {f.read().strip()}
    lines = h.trace_lines(duration=0.5)
    assert (lines.msg.str.contains("lab read 5000")).sum() >= 1
    html = h._repr_html_()
    for part in ("reads", "tracepoint/syscalls/sys_exit_read", "syscalls:sys_exit_read", "events", "dist"):
        assert part in html
    with pytest.raises(MapError, match="no map 'event'"):
        h["event"]


def test_bpf_sec_line_magic(ip):
    df = ip.run_line_magic("bpf_sec", "?tp_btf/sched_switch")
    row = df.iloc[0]
    assert len(df) == 1
    assert row["prog_type"] == "TRACING" and row["attach_type"] == "TRACE_RAW_TP"


def test_bpf_features_reports_this_kernel(ip, capsys):
    df = ip.run_line_magic("bpf_features", "")
    got = dict(zip(df.family, df.available, strict=True))
    assert got["tracepoint"] and got["uprobe"]
    assert "kernel: " + os.uname().release in capsys.readouterr().out
    assert df.attrs["libbpf"].startswith("1.")


def test_magic_documents_its_options(ip):
    doc = ip.find_cell_magic("bpf").__doc__
    for opt in ("--name", "--fn", "--pid", "--event", "--freq", "--period"):
        assert opt in doc


def test_handle_name_defaults_to_the_function(ip):
    h = ip.run_cell_magic("bpf", "raw_tp/sched_switch -q",
                          "BPF_ARRAY(n, u64, 1);\nint on_switch(void *ctx) { int k = 0; n.increment(k); return 0; }")
    assert h is None
    handle = ip.user_ns["on_switch"]
    time.sleep(0.05)
    assert int(handle["n"].to_frame()["value"].iloc[0]) > 0
    assert ip.run_line_magic("bpf_list", "")["name"].tolist() == ["on_switch"]


def test_cflags_quoted_repeated_and_joined(ip):
    cell = """
BPF_ARRAY(out, u64, 2);
int on_switch(void *ctx) { int a = 0, b = 1; u64 x = A, y = B + C; out.update(&a, &x); out.update(&b, &y); return 0; }"""
    h = ip.run_cell_magic("bpf", """raw_tp/sched_switch -n flags --cflags "-DA=7 -DB=1" --cflags=-DC=2""", cell)
    time.sleep(0.05)
    assert h["out"].to_frame()["value"].tolist() == [7, 3]


def test_syscall_events_are_not_raw_tracepoints(ip):
    from ebpf_magic.errors import AttachError

    with pytest.raises(AttachError, match="no tracepoint named sys_enter_getpid"):
        ip.run_cell_magic("bpf", "raw_tp/sys_enter_getpid", "int f(void *ctx) { return 0; }")


def test_map_writes_from_python(ip):
    cell = """
BPF_HASH(watch, u32, u32);
BPF_HASH(seen, u32, u64);
int on_getpid(struct trace_event_raw_sys_enter *ctx) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (!watch.lookup(&pid)) return 0;
    seen.increment(pid);
    return 0;
}"""
    h = ip.run_cell_magic("bpf", "tracepoint/syscalls/sys_enter_getpid -n watched", cell)
    me = os.getpid()
    assert h["seen"].to_frame().empty
    h["watch"][me] = 1
    for _ in range(5):
        os.getpid()
    del h["watch"][me]
    os.getpid()
    assert h["seen"].to_frame().set_index("key")["value"].to_dict() == {me: 5}
    assert len(h["watch"]) == 0
