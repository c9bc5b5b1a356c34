"""Perf buffers read through their mapped per-CPU rings, in both engines: exact counts, PERF_RECORD_LOST
counted exactly, reopening, mixed sizes and a tutorial-style ``bpf_perf_event_output(..., &e, sizeof(e))``."""
from __future__ import annotations

import ctypes as ct
import os
import signal
import threading
import time

import pytest

from tests.conftest import gil_until_done

pytestmark = [pytest.mark.live, pytest.mark.filterwarnings("ignore:not a bytes object:DeprecationWarning")]

PATIENCE = 60.0
HEAD = """\
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
"""
CPU = min(os.sched_getaffinity(0))


def wait_for(condition) -> bool:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


class Producer(threading.Thread):
    """getpid() from one pinned thread: until a perf buffer took a record, then ``count - 1`` more.

    ``ok()`` reads the program's count of records a perf buffer took (none
    before the reader has put this CPU's buffer in the map). With
    ``overflow``, the ``count - 1`` calls keep the GIL (os.getpid() does not
    release it), so they overrun the buffer; then the thread calls getpid()
    again until one more record got in, which makes the kernel write its
    PERF_RECORD_LOST first, and sends Ctrl-C to stop the reader.
    """

    def __init__(self, count: int, ok, flushed=None):
        super().__init__(daemon=True)
        self.count, self.ok, self.flushed = count, ok, flushed
        self.baseline = ok()  # a reopened buffer: count from where the last one ended
        self.failed = None

    def run(self):
        os.sched_setaffinity(0, {CPU})
        getpid = ct.CDLL(None).getpid
        if not wait_for(lambda: getpid() and self.ok() > self.baseline):
            self.failed = "the perf buffer never took a record"
            return
        if self.flushed is None:
            for _ in range(self.count - 1):
                getpid()
            return
        for _ in range(self.count - 1):
            os.getpid()
        if not wait_for(lambda: getpid() and self.flushed()):
            self.failed = "no record got in after the overflow"
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


# --------------------------------------------------------------------------- BCC

BCC_PERF = r"""
struct event { u64 seq; u32 tid; u32 cpu; };
BPF_PERF_OUTPUT(perf);
BPF_ARRAY(counts, u64, 3);    /* ok, no room (-ENOSPC: the kernel counts it lost), ok after no room */
TRACEPOINT_PROBE(syscalls, sys_enter_getpid) {
    u64 id = bpf_get_current_pid_tgid();
    if ((id >> 32) != SELF_PID) return 0;
    int k_ok = 0, k_failed = 1, k_after = 2;
    u64 *ok = counts.lookup(&k_ok), *failed = counts.lookup(&k_failed), *after = counts.lookup(&k_after);
    if (!ok || !failed || !after) return 0;
    struct event e = { .seq = *ok, .tid = (u32)id, .cpu = bpf_get_smp_processor_id() };
    int ret = perf.perf_submit(args, &e, sizeof(e));   /* -ENOENT while no buffer is open */
    if (ret == 0) {
        __sync_fetch_and_add(ok, 1);
        if (*failed) __sync_fetch_and_add(after, 1);
    } else if (ret == -28) {
        __sync_fetch_and_add(failed, 1);
    }
    return 0;
}
"""


def _bcc_count(b, i):
    return lambda: b["counts"][ct.c_int(i)].value


def test_bcc_perf_exact_count_and_reopen(bcc):
    from ebpf_magic.events import collect_events

    b = bcc(BCC_PERF)
    for _attempt in range(3):  # each call closes its buffers and empties the map's slots; the next reopens
        start = _bcc_count(b, 0)()
        prod = Producer(3000, _bcc_count(b, 0))
        prod.start()
        df = collect_events(b, "perf", duration=PATIENCE, max_events=3000)
        prod.join()
        assert prod.failed is None, prod.failed
        assert df["seq"].tolist() == list(range(start, start + 3000))  # one CPU's buffer: in order
        assert set(df["cpu"]) == {CPU} and df.attrs["source"] == "perf"
        assert df.attrs["lost"] == 0 and df.attrs["duration"] < PATIENCE
    # closed: the map's slots are empty again, so the program's outputs go nowhere
    os.getpid()
    assert _bcc_count(b, 0)() == start + 3000 and _bcc_count(b, 1)() == 0


def test_bcc_perf_lost_records_are_counted_exactly(bcc):
    from ebpf_magic.events import collect_events

    b = bcc(BCC_PERF)
    prod = Producer(1000, _bcc_count(b, 0), flushed=lambda: _bcc_count(b, 2)() > 0)
    with gil_until_done():
        prod.start()
        df = collect_events(b, "perf", duration=PATIENCE, max_events=10_000, page_cnt=1)
        prod.join()
    assert prod.failed is None, prod.failed
    ok, failed = _bcc_count(b, 0)(), _bcc_count(b, 1)()
    assert failed > 0, "1000 records of 32 bytes did not overrun a 4096-byte buffer"
    assert df.attrs["kernel_lost"] == failed and df.attrs["interrupted"] is True
    assert len(df) == ok and df["seq"].tolist() == list(range(ok))
    assert df.attrs["lost"] == failed and df.attrs["dropped_by_limit"] == 0


# --------------------------------------------------------------------------- CO-RE

CORE_PERF = HEAD + """
struct event { unsigned long long seq; unsigned int tid; char comm[16]; short kind; };
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4); __uint(value_size, 4); } events SEC(".maps");
const volatile int me = 0;
unsigned long long ok, failed, after;

SEC("tp/syscalls/sys_enter_getpid")
int handle(void *ctx) {
    unsigned long long id = bpf_get_current_pid_tgid();
    if ((id >> 32) != me) return 0;
    struct event e = { .seq = ok, .tid = (unsigned int)id, .kind = -2 };
    bpf_get_current_comm(&e.comm, sizeof(e.comm));
    long ret = bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &e, sizeof(e));
    if (ret == 0) {
        ok++;
        if (failed) after++;
    } else if (ret == -28) {   /* -ENOSPC: no room, the kernel counts it lost (-ENOENT: not open yet) */
        failed++;
    }
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def _global(h, name):
    return lambda: h.globals[name]


def test_core_perf_tutorial_event_exact_count(ip):
    h = ip.run_cell_magic("bpf", f"--set me={os.getpid()}", CORE_PERF)
    for _attempt in range(2):
        start = h.globals["ok"]
        prod = Producer(2000, _global(h, "ok"))
        prod.start()
        ev = h.events("events", duration=PATIENCE, max_events=2000)  # no --event-type: from the object
        prod.join()
        assert prod.failed is None, prod.failed
        assert ev.attrs["event_type"] == "event"
        assert list(ev.columns) == ["seq", "tid", "comm", "kind"]
        assert ev["seq"].tolist() == list(range(start, start + 2000))
        assert set(ev["kind"]) == {-2} and ev["comm"].str.len().min() > 0
        assert ev.attrs["lost"] == 0 and ev.attrs["truncated"] == 0


def test_core_perf_lost_records_are_counted_exactly(ip):
    h = ip.run_cell_magic("bpf", f"--set me={os.getpid()}", CORE_PERF)
    h.events("events", duration=0)  # the record type is read from the object once, before the race
    prod = Producer(1000, _global(h, "ok"), flushed=lambda: h.globals["after"] > 0)
    with gil_until_done():
        prod.start()
        ev = h.events("events", duration=PATIENCE, max_events=10_000, page_cnt=1)
        prod.join()
    assert prod.failed is None, prod.failed
    g = h.globals
    assert g["failed"] > 0
    assert ev.attrs["kernel_lost"] == g["failed"] and ev.attrs["interrupted"] is True
    assert ev["seq"].tolist() == list(range(g["ok"]))


def test_core_perf_max_events_counts_the_rest(ip):
    h = ip.run_cell_magic("bpf", f"--set me={os.getpid()}", CORE_PERF)
    prod = Producer(500, _global(h, "ok"))
    with gil_until_done():  # all 500 are in the buffer before the reader parses any
        prod.start()
        ev = h.events("events", duration=PATIENCE, max_events=50)
        prod.join()
    assert prod.failed is None, prod.failed
    assert ev["seq"].tolist() == list(range(50))
    assert ev.attrs["dropped_by_limit"] + 50 <= 500 and ev.attrs["kernel_lost"] == 0
