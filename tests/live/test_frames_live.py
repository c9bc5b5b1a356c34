"""map_frame / log2_hist / collect_events on real BCC programs and real syscalls (root + BPF)."""
from __future__ import annotations

import ctypes as ct
import json
import os
import shutil
import statistics
import subprocess
import threading
import time

import numpy as np
import pytest

from ebpf_magic import libbpf
from ebpf_magic.frames import log2_hist, map_frame, possible_cpus
from tests.conftest import gil_until_done


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return f"live BPF tests need root (running as uid {os.geteuid()})"
    if not os.path.isdir("/sys/fs/bpf"):
        return "/sys/fs/bpf is missing: this kernel/container has no BPF filesystem"
    return None


_REASON = _skip_reason()
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
    # BCC 0.26 warns whenever it is handed str instead of bytes
    pytest.mark.filterwarnings("ignore:not a bytes object:DeprecationWarning"),
]

N = 500
# Bounds a wait for a condition, so a broken run fails instead of hanging; a
# working one never gets near it, however busy the machine.
PATIENCE = 60.0


# --------------------------------------------------------------------------- loading and unloading

class _ProgInfoHead(ct.Structure):
    _fields_ = [("type", ct.c_uint32), ("id", ct.c_uint32)]


def _prog_id(fd: int) -> int:
    info = _ProgInfoHead()
    size = ct.c_uint32(ct.sizeof(info))
    assert libbpf.lib().bpf_obj_get_info_by_fd(fd, ct.byref(info), ct.byref(size)) == 0
    return info.id


def _loaded_prog_ids() -> set[int]:
    if shutil.which("bpftool"):
        out = subprocess.run(["bpftool", "-j", "prog", "list"], capture_output=True, text=True, check=True)
        return {p["id"] for p in json.loads(out.stdout or "[]")}
    ids, cur, nxt = set(), 0, ct.c_uint32()
    while libbpf.lib().bpf_prog_get_next_id(cur, ct.byref(nxt)) == 0:
        cur = nxt.value
        ids.add(cur)
    return ids


@pytest.fixture
def load():
    """Compile+attach BCC programs; on teardown clean them up and check the kernel dropped them.

    Checked by program id rather than by total count, since other processes on
    the machine may load or unload programs meanwhile.
    """
    from bcc import BPF

    before = _loaded_prog_ids()
    loaded: list[tuple[object, set[int]]] = []

    def _load(text: str):
        b = BPF(text=text, cflags=["-w", f"-DSELF_PID={os.getpid()}"])
        try:
            ids = {_prog_id(fn.fd) for fn in b.funcs.values()}
        except BaseException:
            b.cleanup()
            raise
        loaded.append((b, ids))
        return b

    yield _load
    ours: set[int] = set()
    for b, ids in loaded:
        b.cleanup()
        ours |= ids
    deadline = time.monotonic() + PATIENCE
    while (left := ours & _loaded_prog_ids()) and time.monotonic() < deadline:
        time.sleep(0.05)  # program freeing can trail the last close by an RCU grace period
    after = _loaded_prog_ids()
    print(f"bpf programs loaded: {len(before)} before, {len(after)} after; ours {sorted(ours)}")
    assert not left, f"BPF programs {sorted(left)} are still loaded after cleanup()"


def _comm(tid: int | None = None) -> str:
    path = f"/proc/self/task/{tid}/comm" if tid else "/proc/self/comm"
    with open(path) as f:
        return f.read().rstrip("\n")


# --------------------------------------------------------------------------- maps

def test_hash_counts_getpid_by_pid(load):
    b = load(r"""
BPF_HASH(counts, u32, u64);
TRACEPOINT_PROBE(syscalls, sys_enter_getpid) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    counts.increment(pid);
    return 0;
}
""")
    for _ in range(N):
        os.getpid()
    df = map_frame(b["counts"])
    assert list(df.columns) == ["key", "value"]
    assert df.attrs["map"] == "counts" and df.attrs["map_type"] == "hash"
    mine = df[df["key"] == os.getpid()]
    assert len(mine) == 1 and int(mine["value"].iloc[0]) >= N
    assert df["key"].is_monotonic_increasing


def test_struct_value_with_comm_and_clashing_names(load):
    b = load(r"""
struct key_t { u32 pid; };
struct val_t { u32 pid; u32 tid; u64 calls; char comm[16]; };
BPF_HASH(seen, struct key_t, struct val_t);
TRACEPOINT_PROBE(syscalls, sys_enter_getpid) {
    u64 id = bpf_get_current_pid_tgid();
    struct key_t k = {.pid = id >> 32};
    if (k.pid != SELF_PID) return 0;
    struct val_t zero = {};
    struct val_t *v = seen.lookup_or_try_init(&k, &zero);
    if (!v) return 0;
    v->pid = id >> 32;
    v->tid = (u32)id;
    v->calls++;
    bpf_get_current_comm(&v->comm, sizeof(v->comm));
    return 0;
}
""")
    for _ in range(N):
        os.getpid()
    df = map_frame(b["seen"])
    assert list(df.columns) == ["key.pid", "value.pid", "tid", "calls", "comm"]
    assert len(df) == 1
    row = df.iloc[0]
    assert row["key.pid"] == row["value.pid"] == os.getpid()
    assert row["tid"] == threading.get_native_id()
    assert row["calls"] >= N
    assert row["comm"] == _comm() and isinstance(row["comm"], str)


def test_per_cpu_arrays_long_format(load):
    b = load(r"""
BPF_PERCPU_ARRAY(calls, u64, 4);
BPF_PERCPU_ARRAY(small, u32, 2);   /* 4-byte values: the kernel pads each CPU's copy to 8 */
TRACEPOINT_PROBE(syscalls, sys_enter_getpid) {
    if ((bpf_get_current_pid_tgid() >> 32) != SELF_PID) return 0;
    int k = 0;
    calls.increment(k);
    int one = 1;
    u32 *s = small.lookup(&one);
    if (s) *s += 3;
    return 0;
}
""")
    online = sorted(os.sched_getaffinity(0))
    try:
        for cpu in online:
            os.sched_setaffinity(0, {cpu})
            for _ in range(N):
                os.getpid()
    finally:
        os.sched_setaffinity(0, set(online))
    cpus = list(possible_cpus())

    df = map_frame(b["calls"])
    assert list(df.columns) == ["key", "cpu", "value"]
    assert df.attrs["map_type"] == "percpu_array"
    assert len(df) == 4 * len(cpus)
    assert df["cpu"].tolist() == cpus * 4
    assert df["key"].tolist() == [k for k in range(4) for _ in cpus]
    per_cpu = df[df["key"] == 0].set_index("cpu")["value"]
    for cpu in online:
        assert per_cpu[cpu] >= N
    totals = df.groupby("key")["value"].sum()
    assert totals[0] == b["calls"].sum(0).value >= N * len(online)
    assert totals[1:].eq(0).all()

    small = map_frame(b["small"])
    assert small["value"].dtype == np.uint32
    got = small[small["key"] == 1]["value"].tolist()
    assert got == list(b["small"].getvalue(1))
    assert sum(got) >= 3 * N * len(online)


def test_per_cpu_hash(load):
    # BCC 0.26's increment() never inserts into a per-CPU hash, hence lookup/update by hand
    b = load(r"""
BPF_PERCPU_HASH(h, u32, u64);
TRACEPOINT_PROBE(syscalls, sys_enter_getpid) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (pid != SELF_PID) return 0;
    u64 *v = h.lookup(&pid);
    if (v) { (*v)++; } else { u64 one = 1; h.update(&pid, &one); }
    return 0;
}
""")
    pid = os.getpid()
    for _ in range(N):
        os.getpid()
    df = map_frame(b["h"])
    by_bcc = sum(b["h"][ct.c_uint32(pid)])  # before any other getpid() call adds to it
    assert len(df) == len(possible_cpus())
    assert (df["key"] == pid).all()
    assert df["value"].sum() == by_bcc >= N


def test_100k_hash_bulk_read(load):
    b = load("BPF_HASH(big, u32, u64, 100000);")
    t = b["big"]
    n = 100_000
    keys = (t.Key * n)(*range(n))
    vals = (t.Leaf * n)(*(3 * i + 1 for i in range(n)))
    t.items_update_batch(keys, vals)
    wall, cpu = [], []
    for _ in range(5):
        w0, c0 = time.perf_counter(), time.process_time()
        df = map_frame(t)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    print(f"map_frame of a 100k-entry hash, median of 5: {statistics.median(wall) * 1000:.1f} ms wall, "
          f"{statistics.median(cpu) * 1000:.1f} ms CPU")
    assert len(df) == n
    assert df["key"].tolist() == list(range(n))
    assert (df["value"].to_numpy() == 3 * df["key"].to_numpy(np.uint64) + 1).all()
    # CPU time (user + the batch syscall's system time), so a busy machine does not fail it;
    # a per-entry Python loop would take several times this budget
    assert statistics.median(cpu) < 0.15


def test_log2_histogram_of_read_sizes(load):
    b = load(r"""
BPF_HISTOGRAM(dist);
TRACEPOINT_PROBE(syscalls, sys_enter_read) {
    if ((bpf_get_current_pid_tgid() >> 32) != SELF_PID) return 0;
    dist.increment(bpf_log2l(args->count));
    return 0;
}
""")
    sizes = {1: 20, 3: 20, 100: 20, 4096: 20}
    fd = os.open("/dev/zero", os.O_RDONLY)
    try:
        for size, times in sizes.items():
            for _ in range(times):
                os.read(fd, size)
    finally:
        os.close(fd)
    h = log2_hist(b["dist"], unit="bytes")
    assert list(h.columns) == ["low", "high", "count"]
    assert h.attrs["unit"] == "bytes"
    assert h.index.tolist() == list(range(len(h)))  # dense from slot 0, zeros included
    assert h["count"].iloc[-1] > 0
    for size, times in sizes.items():
        row = h[(h["low"] <= size) & (h["high"] >= size)]
        assert len(row) == 1 and row["count"].iloc[0] >= times, (size, h)
    # the slot holding exactly-4096 reads is [4096, 8191]
    assert h.loc[13, "low"] == 4096 and h.loc[13, "high"] == 8191


def test_log2_histogram_with_struct_key_buckets(load):
    b = load(r"""
struct hkey { u32 op; u64 slot; };
BPF_HISTOGRAM(io, struct hkey);
TRACEPOINT_PROBE(syscalls, sys_enter_read) {
    if ((bpf_get_current_pid_tgid() >> 32) != SELF_PID) return 0;
    struct hkey k = {.op = 0, .slot = bpf_log2l(args->count)};
    io.increment(k);
    return 0;
}
TRACEPOINT_PROBE(syscalls, sys_enter_write) {
    if ((bpf_get_current_pid_tgid() >> 32) != SELF_PID) return 0;
    struct hkey k = {.op = 1, .slot = bpf_log2l(args->count)};
    io.increment(k);
    return 0;
}
""")
    r = os.open("/dev/zero", os.O_RDONLY)
    w = os.open("/dev/null", os.O_WRONLY)
    try:
        for _ in range(10):
            os.read(r, 1000)  # slot 10: 512..1023
            os.write(w, b"x" * 5)  # slot 3: 4..7
    finally:
        os.close(r)
        os.close(w)
    h = log2_hist(b["io"])
    assert list(h.columns) == ["bucket", "low", "high", "count"]
    reads, writes = h[h["bucket"] == 0], h[h["bucket"] == 1]
    assert len(reads) == len(writes)  # same slot range for every bucket
    assert reads.loc[10, "count"] >= 10 and writes.loc[3, "count"] >= 10


# --------------------------------------------------------------------------- events

EVENTS_PROG = r"""
struct event { u32 pid; u32 tid; u64 seq; char comm[16]; };
BPF_RINGBUF_OUTPUT(ring, 64);   /* 256 KiB: a few thousand records */
BPF_PERF_OUTPUT(perf);
BPF_ARRAY(target, u32, 1);      /* the one thread whose getpid() calls become events */
BPF_ARRAY(seq, u64, 2);
TRACEPOINT_PROBE(syscalls, sys_enter_getpid) {
    u64 id = bpf_get_current_pid_tgid();
    int zero = 0, one = 1;
    u32 *want = target.lookup(&zero);
    if (!want || *want != (u32)id) return 0;
    u64 *n_ring = seq.lookup(&zero);
    u64 *n_perf = seq.lookup(&one);
    if (!n_ring || !n_perf) return 0;
    struct event e = {};
    e.pid = id >> 32;
    e.tid = (u32)id;
    bpf_get_current_comm(&e.comm, sizeof(e.comm));
    e.seq = __sync_fetch_and_add(n_ring, 1);
    ring.ringbuf_output(&e, sizeof(e), 0);
    e.seq = *n_perf;   /* counts only records a perf buffer took: none before one is open */
    if (perf.perf_submit(args, &e, sizeof(e)) == 0) __sync_fetch_and_add(n_perf, 1);
    return 0;
}
"""


class Producer(threading.Thread):
    """Calls getpid() ``count`` times in its own thread, marked as the program's target.

    With ``perf_first`` it calls getpid() until the program's perf counter
    says a perf buffer took a record (one exists only while open, so earlier
    records go nowhere), and that call is the first of ``count``. With
    ``hold_gil`` the calls keep the GIL (os.getpid() does not release it), so
    a poller woken by the first record cannot run its Python callback before
    the last record is in the buffer; see ``gil_until_done``.
    """

    def __init__(self, bpf, count: int, perf_first: bool = False, hold_gil: bool = False,
                 cpu: int | None = None):
        super().__init__(daemon=True)
        self.bpf, self.count, self.perf_first, self.hold_gil = bpf, count, perf_first, hold_gil
        # a perf buffer is per CPU: one CPU keeps the records in order and the probe meaningful
        self.cpu = min(os.sched_getaffinity(0)) if perf_first and cpu is None else cpu
        self.perf_before = self._perf_count() if perf_first else 0  # a reopened buffer counts on
        self.tid = None
        self.comm = None
        self.gate_timed_out = False

    def run(self):
        self.tid = threading.get_native_id()
        self.comm = _comm(self.tid)
        if self.cpu is not None:
            os.sched_setaffinity(0, {self.cpu})  # this thread only: its records share one per-CPU buffer
        self.bpf["target"][ct.c_int(0)] = ct.c_uint32(self.tid)
        left = self.count
        if self.perf_first:
            if not _wait_for(self._perf_took_one, pause=0):
                self.gate_timed_out = True
                return
            left -= 1
        if self.hold_gil:
            for _ in range(left):
                os.getpid()
            return
        # getpid through ctypes drops the GIL on every call: each event callback in the
        # main thread then runs at once instead of waiting for a switch interval.
        getpid = ct.CDLL(None, use_errno=True).getpid
        for _ in range(left):
            getpid()

    def _perf_count(self) -> int:
        return self.bpf["seq"][ct.c_int(1)].value

    def _perf_took_one(self) -> bool:
        os.getpid()
        return self._perf_count() > self.perf_before


def _wait_for(condition, patience: float = PATIENCE, pause: float = 0.001) -> bool:
    deadline = time.monotonic() + patience
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(pause)
    return True


def _check_events(df, producer, n):
    assert list(df.columns) == ["pid", "tid", "seq", "comm"]
    assert len(df) == n
    assert (df["pid"] == os.getpid()).all()
    assert (df["tid"] == producer.tid).all()
    assert (df["comm"] == producer.comm).all()
    assert sorted(df["seq"].tolist()) == list(range(n))
    assert df.attrs["lost"] == df.attrs["kernel_lost"] == df.attrs["dropped_by_limit"] == 0
    assert df.attrs["duration"] > 0


def test_ring_buffer_events(load):
    from ebpf_magic.events import collect_events

    b = load(EVENTS_PROG)
    prod = Producer(b, N)
    prod.start()
    # max_events=N returns once all N are in; the duration only bounds a failure
    df = collect_events(b, "ring", duration=PATIENCE, max_events=N)
    prod.join()
    _check_events(df, prod, N)
    assert df["seq"].tolist() == list(range(N))  # one ring for all CPUs: submission order
    assert df.attrs["source"] == "ringbuf" and df.attrs["duration"] < PATIENCE
    assert df.attrs["truncated"] == 0 and df.attrs["interrupted"] is False
    # closed again: a second call reopens it and sees only what came since (nothing)
    again = collect_events(b, "ring", duration=0)
    assert len(again) == 0


def test_perf_buffer_events(load):
    from ebpf_magic.events import collect_events

    b = load(EVENTS_PROG)
    for attempt in range(2):  # the second round proves the buffer was closed and can reopen
        prod = Producer(b, N, perf_first=True)
        prod.start()
        df = collect_events(b, "perf", duration=PATIENCE, max_events=N)
        prod.join()
        assert not prod.gate_timed_out, "the perf buffer never opened"
        assert df.attrs["source"] == "perf" and df.attrs["duration"] < PATIENCE
        df["seq"] -= attempt * N
        _check_events(df, prod, N)
        assert not b.perf_buffers, "perf readers left open"


def test_ring_buffer_max_events_bound(load):
    from ebpf_magic.events import collect_events

    b = load(EVENTS_PROG)
    # a ring buffer keeps records while nobody reads, so fill it first
    prod = Producer(b, 2000)
    prod.start()
    prod.join()
    df = collect_events(b, "ring", duration=PATIENCE, max_events=100)
    assert len(df) == 100
    assert df["seq"].tolist() == list(range(100))
    assert df.attrs["dropped_by_limit"] == 1900
    assert df.attrs["lost"] == 1900 and df.attrs["kernel_lost"] == 0
    assert df.attrs["duration"] < PATIENCE  # stopped at the limit, did not wait out the duration


def test_perf_buffer_max_events_bound(load):
    """Records past max_events that are already in the buffer are read and counted, not kept.

    All 1000 records are in the (one CPU's) buffer before the first callback
    runs, so the poll that fills the sink reads the other 900 too.
    """
    from ebpf_magic.events import collect_events

    b = load(EVENTS_PROG)
    prod = Producer(b, 1000, perf_first=True, hold_gil=True)
    with gil_until_done():
        prod.start()
        df = collect_events(b, "perf", duration=PATIENCE, max_events=100)
        prod.join()
    assert not prod.gate_timed_out, "the perf buffer never opened"
    assert len(df) == 100
    assert df["seq"].tolist() == list(range(100))  # one CPU's buffer: in order
    assert df.attrs["dropped_by_limit"] == 900 and df.attrs["kernel_lost"] == 0
    assert df.attrs["lost"] == 900
    assert (df["tid"] == prod.tid).all()
    assert not b.perf_buffers


def test_undecodable_events_fall_back_to_bytes(load):
    from ebpf_magic.events import collect_events

    b = load(r"""
BPF_RINGBUF_OUTPUT(raw, 8);
TRACEPOINT_PROBE(syscalls, sys_enter_getpid) {
    if ((bpf_get_current_pid_tgid() >> 32) != SELF_PID) return 0;
    u64 v = 0x1122334455667788ULL;
    raw.ringbuf_output(&v, sizeof(v), 0);
    return 0;
}
""")
    for _ in range(3):
        os.getpid()
    df = collect_events(b, "raw", duration=0.0)
    assert list(df.columns) == ["data"]
    assert len(df) >= 3
    assert set(df["data"]) == {(0x1122334455667788).to_bytes(8, "little")}
    assert df.attrs["undecoded_reason"]

    class Value(ct.Structure):
        _fields_ = [("v", ct.c_uint64)]

    os.getpid()
    typed = collect_events(b, "raw", duration=0.0, event_type=Value)
    assert list(typed.columns) == ["v"] and len(typed) >= 1
    assert (typed["v"] == 0x1122334455667788).all()
