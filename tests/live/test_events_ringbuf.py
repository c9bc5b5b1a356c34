"""Ring buffers read through their mapped pages, in both engines: exact counts, wrap-around, discards,
mixed record sizes and the tutorial-style ``struct event *e = bpf_ringbuf_reserve(...)`` cell."""
from __future__ import annotations

import ctypes as ct
import os
import threading
import time

import pytest

pytestmark = [pytest.mark.live, pytest.mark.filterwarnings("ignore:not a bytes object:DeprecationWarning")]

PATIENCE = 60.0
HEAD = """\
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
"""


def getpid_times(n: int) -> None:
    """n real getpid() syscalls from this thread (glibc does not cache getpid)."""
    getpid = ct.CDLL(None).getpid
    for _ in range(n):
        getpid()


def in_thread(fn, *args):
    """Run fn in a thread pinned to one CPU; returns its native thread id once it ended.

    The thread's comm is in ``in_thread.comm`` afterwards.
    """
    out = {}

    def run():
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        out["tid"] = threading.get_native_id()
        with open(f"/proc/self/task/{out['tid']}/comm") as f:
            in_thread.comm = f.read().strip()
        fn(*args)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(PATIENCE)
    assert not t.is_alive()
    return out["tid"]


def paced(map_fd: int, size: int, total: int, burst: int = 1000):
    """getpid() ``total`` times in bursts, each once the ring is at most half full.

    Waits for the reader, not for time: a busy machine may stall the reader
    for longer than the ring lasts, and a dropped record would be the test's
    fault. The positions come from the ring's own pages, mapped read-only.
    """
    import mmap

    import numpy as np

    page = mmap.PAGESIZE
    with mmap.mmap(map_fd, 2 * page, access=mmap.ACCESS_READ) as m:
        pos = np.frombuffer(m, "<u8")
        cons, prod = pos[0:1], pos[page // 8:page // 8 + 1]
        for done in range(0, total, burst):
            deadline = time.monotonic() + PATIENCE
            while int(prod[0]) - int(cons[0]) > size // 2 and time.monotonic() < deadline:
                time.sleep(0.0005)
            getpid_times(min(burst, total - done))
        del pos, cons, prod


# --------------------------------------------------------------------------- BCC

BCC_RING = r"""
struct event { u32 tid; u32 pad; u64 seq; };
BPF_RINGBUF_OUTPUT(ring, 1);    /* one page: 4096 bytes, 170 records of 24 bytes */
BPF_ARRAY(seq, u64, 1);
TRACEPOINT_PROBE(syscalls, sys_enter_getpid) {
    u64 id = bpf_get_current_pid_tgid();
    if ((id >> 32) != SELF_PID) return 0;
    int zero = 0;
    u64 *n = seq.lookup(&zero);
    if (!n) return 0;
    struct event e = { .tid = (u32)id, .seq = *n };
    if (ring.ringbuf_output(&e, sizeof(e), 0) == 0) __sync_fetch_and_add(n, 1);
    return 0;
}
"""


def test_bcc_ring_wraps_many_times_with_exact_counts(bcc):
    """24-byte records through a 4096-byte ring, 100 at a time: records straddle the end again and again."""
    from ebpf_magic.events import collect_events

    b = bcc(BCC_RING)
    seen = []
    for _ in range(30):  # 30 * 100 * 24 bytes = 17.6 times round the ring
        tid = in_thread(getpid_times, 100)
        df = collect_events(b, "ring", duration=0)  # the ring kept them: a drain reads them all
        assert len(df) == 100 and (df["tid"] == tid).all()
        assert df.attrs["lost"] == 0 and df.attrs["truncated"] == 0
        seen += df["seq"].tolist()
    assert seen == list(range(3000))


def test_bcc_ring_exact_count_while_producing(bcc):
    from ebpf_magic.events import collect_events

    b = bcc(BCC_RING.replace("BPF_RINGBUF_OUTPUT(ring, 1)", "BPF_RINGBUF_OUTPUT(ring, 64)"))
    ring = b["ring"]
    producer = threading.Thread(target=in_thread, args=(paced, ring.map_fd, 64 * 4096, 20_000), daemon=True)
    producer.start()
    df = collect_events(b, "ring", duration=PATIENCE, max_events=20_000)
    producer.join()
    dropped = b["seq"][ct.c_int(0)].value
    assert dropped == 20_000, "the program counts only records the ring took"
    assert df["seq"].tolist() == list(range(20_000))
    assert df.attrs["duration"] < PATIENCE and df.attrs["lost"] == 0


# --------------------------------------------------------------------------- CO-RE

TUTORIAL = HEAD + """
#define TASK_COMM_LEN 16
enum kind { K_NONE, K_GETPID = 7 };
struct point { short x, y; };
struct event {
    int pid;
    enum kind kind;
    char comm[TASK_COMM_LEN];
    struct point where;
    unsigned long long seq;
    unsigned char bytes[3];
    unsigned int low : 4, high : 4;
};
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 256 * 1024); } rb SEC(".maps");
const volatile int me = 0;
unsigned long long n;

SEC("tp/syscalls/sys_enter_getpid")
int handle(void *ctx) {
    int pid = bpf_get_current_pid_tgid() >> 32;
    if (pid != me) return 0;
    struct event *e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
    if (!e) return 0;
    e->pid = pid;
    e->kind = K_GETPID;
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    e->where.x = -3; e->where.y = 4;
    e->seq = n++;
    e->bytes[0] = 1; e->bytes[1] = 2; e->bytes[2] = 0;
    e->low = 5; e->high = 9;
    bpf_ringbuf_submit(e, 0);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_tutorial_struct_event_decodes_without_event_type(ip):
    h = ip.run_cell_magic("bpf", f"--set me={os.getpid()}", TUTORIAL)
    in_thread(getpid_times, 250)
    ev = h.events("rb", duration=0)
    comm = in_thread.comm
    assert ev.attrs["event_type"] == "event"
    assert list(ev.columns) == ["pid", "kind", "comm", "where.x", "where.y", "seq", "bytes", "low", "high"]
    assert len(ev) == 250 and ev["seq"].tolist() == list(range(250))
    assert (ev["pid"] == os.getpid()).all() and set(ev["kind"]) == {"K_GETPID"}
    assert set(ev["comm"]) == {comm}
    assert set(ev["where.x"]) == {-3} and set(ev["where.y"]) == {4}
    assert set(ev["bytes"]) == {"\x01\x02"}  # unsigned char[3] is a string, as in BTF
    assert set(ev["low"]) == {5} and set(ev["high"]) == {9}
    assert ev.attrs["lost"] == 0 and ev.attrs["truncated"] == 0


DISCARDS = HEAD + """
struct rec { unsigned long long seq; unsigned int tid; unsigned int kept; };
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");
const volatile int me = 0;
unsigned long long calls, kept;

SEC("tp/syscalls/sys_enter_getpid")
int handle(void *ctx) {
    unsigned long long id = bpf_get_current_pid_tgid();
    if ((id >> 32) != me) return 0;
    struct rec *r = bpf_ringbuf_reserve(&rb, sizeof(*r), 0);
    if (!r) return 0;
    r->seq = calls++;
    r->tid = (unsigned int)id;
    if (r->seq % 3 == 1) { bpf_ringbuf_discard(r, 0); return 0; }
    r->kept = kept++;
    bpf_ringbuf_submit(r, 0);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_discarded_records_are_skipped_across_wraps(ip):
    h = ip.run_cell_magic("bpf", f"--set me={os.getpid()}", DISCARDS)
    seqs, kept = [], []
    for _ in range(20):  # 20 * 90 * 24 bytes through a 4096-byte ring
        in_thread(getpid_times, 90)
        ev = h.events("rb", duration=0)
        assert len(ev) == 60 and ev.attrs["event_type"] == "rec"
        seqs += ev["seq"].tolist()
        kept += ev["kept"].tolist()
    assert seqs == [s for s in range(1800) if s % 3 != 1]
    assert kept == list(range(1200))
    assert h.globals["calls"] == 1800


MIXED = HEAD + """
struct wide { unsigned long long seq; unsigned long long a; unsigned long long b; };
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 8192); } rb SEC(".maps");
const volatile int me = 0;
unsigned long long n;

SEC("tp/syscalls/sys_enter_getpid")
int handle(void *ctx) {
    if ((bpf_get_current_pid_tgid() >> 32) != me) return 0;
    struct wide w = { .seq = n, .a = 0xa, .b = 0xb };
    long ret;
    switch (n % 3) {   /* 8, 16 or 24 bytes */
    case 0: ret = bpf_ringbuf_output(&rb, &w, 8, 0); break;
    case 1: ret = bpf_ringbuf_output(&rb, &w, 16, 0); break;
    default: ret = bpf_ringbuf_output(&rb, &w, 24, 0);
    }
    if (ret == 0) n++;
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_mixed_record_sizes(ip):
    h = ip.run_cell_magic("bpf", f"--set me={os.getpid()}", MIXED)
    got = []
    for _ in range(10):  # 10 * 200 records of 16..32 bytes with headers through 8 KiB
        in_thread(getpid_times, 200)
        ev = h.events("rb", duration=0, event_type="wide")
        assert len(ev) == 200
        got.append(ev)
    import pandas as pd

    ev = pd.concat(got, ignore_index=True)
    assert ev["seq"].tolist() == list(range(2000))
    size = ev["seq"] % 3
    assert (ev["a"] == (size >= 1) * 0xa).all() and (ev["b"] == (size == 2) * 0xb).all()
    assert sum(f.attrs["truncated"] for f in got) == int((size < 2).sum())  # short records are zero-filled


def test_core_ring_max_events_and_drain(ip):
    h = ip.run_cell_magic("bpf", f"--set me={os.getpid()}", TUTORIAL)
    in_thread(getpid_times, 1000)
    ev = h.events("rb", duration=PATIENCE, max_events=10)
    assert ev["seq"].tolist() == list(range(10))
    assert ev.attrs["dropped_by_limit"] == 990 == ev.attrs["lost"] and ev.attrs["duration"] < PATIENCE
    assert len(h.events("rb", duration=0)) == 0


def test_core_ring_exact_count_while_producing(ip):
    h = ip.run_cell_magic("bpf", f"--set me={os.getpid()}", TUTORIAL)
    # the first call reads the record type from the object's DWARF (tens of ms): not while
    # 20000 records race into a ring that holds 4681 of them
    assert len(h.events("rb", duration=0)) == 0
    producer = threading.Thread(target=in_thread, args=(paced, h["rb"].info.fd, 256 * 1024, 20_000),
                                daemon=True)
    producer.start()
    ev = h.events("rb", duration=PATIENCE, max_events=20_000)
    producer.join()
    assert ev["seq"].tolist() == list(range(20_000))
    assert h.globals["n"] == 20_000 and ev.attrs["lost"] == 0
