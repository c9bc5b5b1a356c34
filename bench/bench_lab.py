"""Benchmarks for the lab: cell-to-attached latency, map-to-DataFrame reads, event throughput.

Run as root from the repository root:

    .venv/bin/python bench/bench_lab.py [--quick]

Prints a table of medians with ratios to figures measured earlier on the
lab machine, then one ``BENCH_JSON {...}`` line with every number and a
description of the machine. Exits 1 if a check failed (wrong row count,
a BPF program or fd of ours still alive afterwards) or a section errored.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from ebpf_magic import attach, loader  # noqa: E402
from ebpf_magic import libbpf as lab_libbpf  # noqa: E402
from ebpf_magic.privileges import check_privileges  # noqa: E402

# Figures measured earlier on this machine; the table prints ours against them.
BASELINE = {
    "bcc_compile_trivial_s": 0.55,
    "bcc_compile_headers_s": 4.3,
    "bcc_items_lookup_batch_s": 0.15,
    "bcc_items_s": 1.3,
    "ringbuf_delivered_per_s": 354_000,
    "ringbuf_lost_pct": 55.0,
    "perf_delivered_per_s": 665_000,
    "perf_lost_pct": 0.0,
}

SEC = "tracepoint/syscalls/sys_enter_getpid"
HASH_ENTRIES = 100_000

TRIVIAL_CELL = r"""
BPF_HASH(counts, u32, u64);
int on_getpid(struct trace_event_raw_sys_enter *ctx)
{
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    counts.increment(pid);
    return 0;
}
"""
SCHED_CELL = "#include <linux/sched.h>\n" + TRIVIAL_CELL
# The same program as plain BCC sees it (no lab prelude, so no lab-only context struct).
PLAIN_BCC_TEXT = TRIVIAL_CELL.replace("struct trace_event_raw_sys_enter *ctx", "void *ctx")
PLAIN_BCC_FLAGS = ["-Wno-duplicate-decl-specifier", "-Wno-ignored-attributes"]

# The program must use the map, or there is nothing to attach; it only looks,
# so the contents stay what Python wrote while they are read back.
HASH_CELL = rf"""
BPF_HASH(h, u32, u64, {HASH_ENTRIES});
int touch_h(struct trace_event_raw_sys_enter *ctx)
{{
    u32 k = 0;
    h.lookup(&k);
    return 0;
}}
"""

# The target pid lives in a map so the program can be built before the load
# generator exists. Counters are per CPU so counting costs no atomics that
# would slow the very path being measured. Every field is assigned, so the
# record has no uninitialised padding for the verifier to reject.
STREAM_CELL = r"""
struct event { u32 pid; u32 cpu; u64 n; };
%(declare)s
BPF_ARRAY(target, u32, 1);
BPF_PERCPU_ARRAY(stats, u64, 2);   /* 0: outputs tried, 1: outputs failed */

int on_getpid(struct trace_event_raw_sys_enter *ctx)
{
    u32 zero = 0, one = 1;
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    u32 *want = target.lookup(&zero);
    if (!want || *want != pid)
        return 0;
    u64 *tried = stats.lookup(&zero);
    u64 *failed = stats.lookup(&one);
    if (!tried || !failed)
        return 0;
    struct event e = {};
    e.pid = pid;
    e.cpu = bpf_get_smp_processor_id();
    e.n = ++*tried;
    int ret = %(output)s;
    if (ret < 0)
        ++*failed;
    return 0;
}
"""
STREAMS = {
    # 256 pages = 1 MiB, the size the baseline was measured with.
    "ringbuf": {"declare": "BPF_RINGBUF_OUTPUT(events, 256);",
                "output": "events.ringbuf_output(&e, sizeof(e), 0)"},
    "perf": {"declare": "BPF_PERF_OUTPUT(events);",
             "output": "events.perf_submit(ctx, &e, sizeof(e))"},
}

# The generator waits for one byte on stdin, so it starts only once the reader
# is polling (a perf buffer that is not open yet would make every output fail).
GETPID_LOOP_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0, t0, elapsed;
    long n = 0;
    char go;
    if (read(0, &go, 1) != 1)
        return 1;
    t0 = now();
    do {
        for (int i = 0; i < 1024; i++)
            syscall(SYS_getpid);
        n += 1024;
        elapsed = now() - t0;
    } while (elapsed < secs);
    printf("%ld %.6f\n", n, elapsed);
    return 0;
}
"""
GETPID_LOOP_PY = r"""
import os, sys, time
secs = float(sys.argv[1])
if not sys.stdin.buffer.read(1):
    sys.exit(1)
getpid, n, t0 = os.getpid, 0, time.monotonic()
while True:
    for _ in range(1024):
        getpid()
    n += 1024
    elapsed = time.monotonic() - t0
    if elapsed >= secs:
        break
print(n, f"{elapsed:.6f}")
"""

# Reader start-up: time for the reader to open its buffer before the generator
# is released, and for it to empty the buffer after the generator stops.
START_DELAY_S = 0.3
DRAIN_S = 0.7
MAX_EVENTS = 50_000_000


# --------------------------------------------------------------------------- bookkeeping

class Tracker:
    """What this process loaded, so leaks are checked against our own programs only.

    Other users of the machine (test suites, tools) load and unload programs
    at the same time, so the global ``bpftool prog list`` count is printed but
    cannot prove anything by itself.
    """

    def __init__(self):
        self.prog_ids: set[int] = set()
        self.live: list = []

    def build(self, cell: str, name: str):
        before = set(_own_prog_ids())
        prog = loader.build(cell, SEC, name=name, options=attach.Options())
        self.live.append(prog)
        self.prog_ids |= set(_own_prog_ids()) - before
        return prog

    def detach(self, prog) -> None:
        try:
            prog.detach()
        finally:
            if prog in self.live:
                self.live.remove(prog)

    def detach_all(self) -> None:
        for prog in list(self.live):
            self.detach(prog)


def _own_bpf_fds() -> dict[str, int]:
    """Our open BPF objects by kind: prog, map, link and perf-event fds."""
    kinds: dict[str, int] = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the fd listing itself, closed meanwhile
            continue
        if target.startswith("anon_inode:") and ("bpf" in target or "perf_event" in target):
            kind = target.removeprefix("anon_inode:").strip("[]")
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def _own_prog_ids() -> list[int]:
    ids = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:bpf-prog":
                continue
            with open(f"/proc/self/fdinfo/{fd}") as f:
                ids += [int(ln.split()[1]) for ln in f if ln.startswith("prog_id:")]
        except OSError:
            continue
    return ids


def _system_prog_ids() -> set[int] | None:
    if not shutil.which("bpftool"):
        return None
    out = subprocess.run(["bpftool", "-j", "prog", "list"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None
    return {p["id"] for p in json.loads(out.stdout or "[]")}


def machine_info() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        import bcc

        bcc_version = getattr(bcc, "__version__", "unknown")
    except ImportError:
        bcc_version = "missing"
    try:
        libbpf_version = lab_libbpf.version()
    except OSError:
        libbpf_version = "missing"
    return {"kernel": platform.release(), "cpu": cpu, "nproc": os.cpu_count(),
            "bcc": bcc_version, "libbpf": libbpf_version, "python": platform.python_version(),
            "loadavg_start": _loadavg()}


def _loadavg() -> list[float]:
    # The lab machine is shared; a busy neighbour shows up here and in the timings.
    return [round(x, 2) for x in os.getloadavg()]


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def timed(fn):
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


# --------------------------------------------------------------------------- 1. cell to attached

def bench_build(tracker: Tracker, reps: int) -> dict:
    import bcc

    out: dict = {"reps": reps}
    for label, cell in (("trivial", TRIVIAL_CELL), ("sched_h", SCHED_CELL)):
        builds, detaches = [], []
        for _ in range(reps):
            dt, prog = timed(lambda cell=cell: tracker.build(cell, "bench_build"))
            builds.append(dt)
            detaches.append(timed(lambda prog=prog: tracker.detach(prog))[0])
        out[label] = {"build_s": builds, "build_median_s": median(builds),
                      "detach_median_s": median(detaches)}
    # Plain BCC in this same run, so load on the machine affects both sides alike.
    plain = []
    for _ in range(reps):
        # The lab's warning flags too, or BCC prints header warnings on every compile.
        dt, b = timed(lambda: bcc.BPF(text=PLAIN_BCC_TEXT, cflags=PLAIN_BCC_FLAGS))
        b.cleanup()
        plain.append(dt)
    out["plain_bcc_trivial"] = {"compile_s": plain, "compile_median_s": median(plain)}
    return out


# --------------------------------------------------------------------------- 1b. CO-RE cells

CORE_CELL = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 10240);
         __type(key, u32); __type(value, u64); } counts SEC(".maps");
SEC("tp/syscalls/sys_enter_getpid")
int on_getpid(void *ctx) {
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    u32 tgid = BPF_CORE_READ(t, tgid);
    u64 one = 1, *v = bpf_map_lookup_elem(&counts, &tgid);
    if (v) __sync_fetch_and_add(v, 1); else bpf_map_update_elem(&counts, &tgid, &one, BPF_ANY);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def bench_core(reps: int) -> dict:
    """clang with the whole vmlinux.h, with its precompiled header, an unchanged re-run, and build+attach."""
    import subprocess

    from ebpf_magic.core import toolchain

    path, _ = toolchain.clang()
    flags = toolchain.base_flags(toolchain.kernel_dir())
    toolchain.pch()  # built once per kernel and clang; not part of a cell's cost
    full, with_pch, hits, builds = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench_core_") as tmp:
        src = os.path.join(tmp, "cell.c")
        for i in range(reps):
            with open(src, "w") as f:
                f.write(CORE_CELL + f"// {i}\n")
            full.append(timed(lambda: subprocess.run([path, *flags, "-c", src, "-o", src + ".o"],
                                                     check=True, capture_output=True))[0])
            with_pch.append(timed(lambda i=i: toolchain.compile_cell(CORE_CELL + f"// {time.time()} {i}\n"))[0])
            hits.append(timed(lambda: toolchain.compile_cell(CORE_CELL))[0])
            dt, prog = timed(lambda: loader.build(CORE_CELL, engine="core", name="bench_core"))
            builds.append(dt)
            prog.detach()
    return {"clang_full_vmlinux_s": median(full), "clang_pch_s": median(with_pch),
            "cache_hit_s": median(hits), "build_attach_s": median(builds)}


# --------------------------------------------------------------------------- 2. map to DataFrame

def bench_hash(tracker: Tracker, reps: int, bcc_reps: int) -> dict:
    prog = tracker.build(HASH_CELL, "bench_hash")
    try:
        view = prog["h"]
        table = view.table
        keys = np.arange(HASH_ENTRIES, dtype=np.uint32)
        values = keys.astype(np.uint64) * 3
        # ctypes views of the numpy buffers: one BPF_MAP_UPDATE_BATCH, no per-entry Python.
        ct_keys = (table.Key * HASH_ENTRIES).from_buffer(keys)
        ct_values = (table.Leaf * HASH_ENTRIES).from_buffer(values)
        fill_s, _ = timed(lambda: table.items_update_batch(ct_keys, ct_values))

        frames = []
        for _ in range(reps):
            dt, df = timed(view.to_frame)
            frames.append(dt)
        rows_ok = len(df) == HASH_ENTRIES
        values_ok = bool(rows_ok and (df["value"].to_numpy() == df["key"].to_numpy().astype(np.uint64) * 3)
                         .all())
        batch, batch_rows = [], 0
        items, items_rows = [], 0
        for _ in range(bcc_reps):
            dt, got = timed(lambda: list(table.items_lookup_batch()))
            batch.append(dt)
            batch_rows = len(got)
            dt, got = timed(lambda: list(table.items()))
            items.append(dt)
            items_rows = len(got)
        return {
            "entries": HASH_ENTRIES, "fill_s": fill_s,
            "to_frame_s": frames, "to_frame_median_s": median(frames),
            "rows": len(df), "rows_ok": rows_ok, "values_ok": values_ok,
            "bcc_items_lookup_batch_s": batch, "bcc_items_lookup_batch_median_s": median(batch),
            "bcc_items_lookup_batch_rows": batch_rows,
            "bcc_items_s": items, "bcc_items_median_s": median(items), "bcc_items_rows": items_rows,
        }
    finally:
        tracker.detach(prog)


# --------------------------------------------------------------------------- 3. event throughput

def getpid_command(workdir: str) -> tuple[list[str], str]:
    """The load generator: compiled C if gcc works, else a Python loop (slower, so fewer events)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc:
        src, exe = os.path.join(workdir, "getpid_loop.c"), os.path.join(workdir, "getpid_loop")
        with open(src, "w") as f:
            f.write(GETPID_LOOP_C)
        built = subprocess.run([gcc, "-O2", "-o", exe, src], capture_output=True, text=True, check=False)
        if built.returncode == 0:
            return [exe], "c"
        print(f"gcc failed, using the Python load generator:\n{built.stderr}", file=sys.stderr)
    return [sys.executable, "-c", GETPID_LOOP_PY], "python"


def run_generator(cmd: list[str], seconds: float, release_after: float | None = None, on_start=None):
    """Start the getpid loop; released now, or by a timer while the caller blocks reading events."""
    child = subprocess.Popen([*cmd, str(seconds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def release():
        try:
            child.stdin.write("g")
            child.stdin.flush()
        except (BrokenPipeError, ValueError):  # the child is gone already; the caller sees that
            pass

    if on_start is not None:
        on_start(child.pid)
    timer = threading.Timer(release_after or 0.0, release)
    timer.start()
    return child, timer


def stop_generator(child) -> None:
    if child.poll() is None:
        child.kill()
        child.wait()
    for pipe in (child.stdin, child.stdout):
        try:
            pipe.close()
        except BrokenPipeError:  # unread "g" when the child died first
            pass


def finish_generator(child, timer, timeout: float) -> tuple[int, float]:
    timer.cancel()
    try:
        # The reply is one short line, so waiting before reading cannot fill the pipe.
        child.wait(timeout=timeout)
        out = child.stdout.read()
    finally:
        stop_generator(child)
    calls, elapsed = out.split()
    return int(calls), float(elapsed)


def bench_unloaded_getpid(cmd: list[str], seconds: float) -> dict:
    # The generator's own ceiling: how many events there could be at most.
    child, timer = run_generator(cmd, seconds)
    calls, elapsed = finish_generator(child, timer, timeout=seconds + 10)
    return {"calls": calls, "elapsed_s": elapsed, "calls_per_s": calls / elapsed}


def bench_stream(tracker: Tracker, kind: str, cmd: list[str], seconds: float) -> dict:
    prog = tracker.build(STREAM_CELL % STREAMS[kind], f"bench_{kind}")
    child = timer = None
    try:
        target = prog["target"].table

        def aim(pid):
            target[target.Key(0)] = target.Leaf(pid)

        child, timer = run_generator(cmd, seconds, release_after=START_DELAY_S, on_start=aim)
        df = prog.events("events", duration=START_DELAY_S + seconds + DRAIN_S, max_events=MAX_EVENTS)
        calls, elapsed = finish_generator(child, timer, timeout=10)
        child = None
        counters = prog["stats"].to_frame().groupby("key")["value"].sum()
        tried, failed = int(counters.get(0, 0)), int(counters.get(1, 0))
        delivered = len(df)
        foreign = int((df["pid"] != target[target.Key(0)].value).sum()) if delivered else 0
        return {
            "generator_calls": calls, "generator_s": elapsed,
            "tried": tried, "failed_in_program": failed, "delivered": delivered,
            # A full ring drains after the generator stops, so this can exceed the
            # sustained rate by at most one buffer's worth over `generator_s`.
            "delivered_per_s": delivered / elapsed,
            "tried_per_s": tried / elapsed,
            "lost_pct": 100.0 * failed / tried if tried else 0.0,
            "attrs": {k: df.attrs.get(k) for k in ("kernel_lost", "dropped_by_limit", "lost", "duration",
                                                    "truncated", "interrupted")},
            "unaccounted": tried - failed - delivered - int(df.attrs.get("dropped_by_limit", 0)),
            "foreign_pid_rows": foreign,
        }
    finally:
        if child is not None:
            timer.cancel()
            stop_generator(child)
        tracker.detach(prog)


# --------------------------------------------------------------------------- report

def ratio(value, base) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.2f}x"


def fmt_s(x) -> str:
    return "-" if x is None else f"{x:.3f} s"


def fmt_rate(x) -> str:
    return "-" if x is None else f"{x / 1000:.0f} k/s"


def report_rows(res: dict) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    b = res.get("build", {})
    if "trivial" in b:
        plain = b["plain_bcc_trivial"]["compile_median_s"]
        rows += [
            ("build+attach, trivial cell", fmt_s(b["trivial"]["build_median_s"]),
             fmt_s(BASELINE["bcc_compile_trivial_s"]),
             ratio(b["trivial"]["build_median_s"], BASELINE["bcc_compile_trivial_s"])),
            ("build+attach, + linux/sched.h", fmt_s(b["sched_h"]["build_median_s"]),
             fmt_s(BASELINE["bcc_compile_headers_s"]),
             ratio(b["sched_h"]["build_median_s"], BASELINE["bcc_compile_headers_s"])),
            ("plain BCC compile, same run", fmt_s(plain), fmt_s(BASELINE["bcc_compile_trivial_s"]),
             ratio(plain, BASELINE["bcc_compile_trivial_s"])),
            ("  lab trivial / plain BCC now", "", "", ratio(b["trivial"]["build_median_s"], plain)),
            ("detach (median, trivial)", fmt_s(b["trivial"]["detach_median_s"]), "", ""),
        ]
    c = res.get("core", {})
    if "clang_pch_s" in c:
        rows += [
            ("CO-RE: clang, whole vmlinux.h", fmt_s(c["clang_full_vmlinux_s"]), fmt_s(0.6),
             ratio(c["clang_full_vmlinux_s"], 0.6)),
            ("CO-RE: clang with the PCH", fmt_s(c["clang_pch_s"]), fmt_s(0.06), ratio(c["clang_pch_s"], 0.06)),
            ("CO-RE: unchanged re-run (cache)", fmt_s(c["cache_hit_s"]), "", ""),
            ("CO-RE: cell to attached (cached)", fmt_s(c["build_attach_s"]),
             fmt_s(BASELINE["bcc_compile_headers_s"]), ratio(c["build_attach_s"], BASELINE["bcc_compile_headers_s"])),
        ]
    h = res.get("hash", {})
    if "to_frame_median_s" in h:
        rows += [
            (f"to_frame() {h['entries'] // 1000}k hash ({h['rows']} rows)", fmt_s(h["to_frame_median_s"]),
             fmt_s(BASELINE["bcc_items_lookup_batch_s"]),
             ratio(h["to_frame_median_s"], BASELINE["bcc_items_lookup_batch_s"])),
            ("BCC items_lookup_batch()", fmt_s(h["bcc_items_lookup_batch_median_s"]),
             fmt_s(BASELINE["bcc_items_lookup_batch_s"]),
             ratio(h["bcc_items_lookup_batch_median_s"], BASELINE["bcc_items_lookup_batch_s"])),
            ("BCC items()", fmt_s(h["bcc_items_median_s"]), fmt_s(BASELINE["bcc_items_s"]),
             ratio(h["bcc_items_median_s"], BASELINE["bcc_items_s"])),
            ("  to_frame / BCC batch now", "", "",
             ratio(h["to_frame_median_s"], h["bcc_items_lookup_batch_median_s"])),
            ("  to_frame / BCC items() now", "", "", ratio(h["to_frame_median_s"], h["bcc_items_median_s"])),
            ("fill via items_update_batch", fmt_s(h["fill_s"]), "", ""),
        ]
    g = res.get("getpid_unloaded", {})
    if "calls_per_s" in g:
        rows.append((f"getpid loop ({res['generator']}), nothing attached", fmt_rate(g["calls_per_s"]),
                     "", ""))
    for kind in STREAMS:
        s = res.get(kind, {})
        if "delivered_per_s" not in s:
            continue
        base_rate, base_lost = BASELINE[f"{kind}_delivered_per_s"], BASELINE[f"{kind}_lost_pct"]
        rows += [
            (f"{kind}: delivered to prog.events()", fmt_rate(s["delivered_per_s"]), fmt_rate(base_rate),
             ratio(s["delivered_per_s"], base_rate)),
            (f"{kind}: tried in program", fmt_rate(s["tried_per_s"]), "", ""),
            (f"{kind}: lost (program counter)", f"{s['lost_pct']:.1f} %", f"{base_lost:.0f} %", ""),
            (f"{kind}: attrs kernel_lost / lost", f"{s['attrs']['kernel_lost']} / {s['attrs']['lost']}",
             "", ""),
        ]
    return rows


def print_table(rows) -> None:
    head = ("measure", "ours", "baseline", "ours/base")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    line = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    print(line.format(*head))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line.format(*r))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="median of 3 and shorter event runs")
    args = ap.parse_args()
    reps, bcc_reps, stream_s = (3, 1, 1.0) if args.quick else (5, 2, 3.0)

    check_privileges()
    res: dict = {"quick": args.quick, "machine": machine_info(), "baseline": BASELINE}
    system_before = _system_prog_ids()
    fds_before = _own_bpf_fds()
    tracker = Tracker()
    errors: dict[str, str] = {}

    def section(name, fn, *a):
        print(f"... {name}", file=sys.stderr, flush=True)
        try:
            res[name] = fn(*a)
        except Exception as exc:  # one broken section should not hide the others' figures
            traceback.print_exc()
            errors[name] = f"{type(exc).__name__}: {exc}"

    try:
        section("build", bench_build, tracker, reps)
        section("core", bench_core, reps)
        section("hash", bench_hash, tracker, reps, bcc_reps)
        with tempfile.TemporaryDirectory(prefix="bench_lab_") as tmp:
            cmd, res["generator"] = getpid_command(tmp)
            section("getpid_unloaded", bench_unloaded_getpid, cmd, min(stream_s, 1.0))
            for kind in STREAMS:
                section(kind, bench_stream, tracker, kind, cmd, stream_s)
    finally:
        tracker.detach_all()

    system_after = _system_prog_ids()
    fds_after = _own_bpf_fds()
    still_loaded = sorted(tracker.prog_ids & system_after) if system_after is not None else None
    res["machine"]["loadavg_end"] = _loadavg()
    res["leaks"] = {
        "bpftool_progs_before": None if system_before is None else len(system_before),
        "bpftool_progs_after": None if system_after is None else len(system_after),
        "our_prog_ids": sorted(tracker.prog_ids),
        "our_progs_still_loaded": still_loaded,
        "own_bpf_fds_before": fds_before, "own_bpf_fds_after": fds_after,
    }
    res["errors"] = errors

    checks = {
        "hash_rows": res.get("hash", {}).get("rows_ok", False),
        "hash_values": res.get("hash", {}).get("values_ok", False),
        "no_prog_left": still_loaded == [] if still_loaded is not None else not _own_prog_ids(),
        "no_fd_left": fds_after == fds_before,
        "no_errors": not errors,
        # Every output the program tried is either delivered, counted as failed, or over the limit.
        "events_accounted": all(res.get(k, {}).get("unaccounted") == 0 for k in STREAMS),
        "events_right_pid": all(res.get(k, {}).get("foreign_pid_rows") == 0 for k in STREAMS),
    }
    res["checks"] = checks

    m = res["machine"]
    print(f"machine: {m['kernel']}, {m['cpu']}, {m['nproc']} CPUs, bcc {m['bcc']}, libbpf {m['libbpf']}, "
          f"load {m['loadavg_start']} -> {m['loadavg_end']}; "
          f"medians of {reps}, event runs one {stream_s:.0f} s run each")
    print_table(report_rows(res))
    lk = res["leaks"]
    print(f"bpftool prog list: {lk['bpftool_progs_before']} before, {lk['bpftool_progs_after']} after "
          f"(machine-wide; others may load programs meanwhile); ours loaded {len(lk['our_prog_ids'])}, "
          f"still loaded: {lk['our_progs_still_loaded']}; our BPF fds {fds_before} -> {fds_after}")
    for name, err in errors.items():
        print(f"ERROR in {name}: {err}")
    print("checks: " + ", ".join(f"{k}={'ok' if v else 'FAILED'}" for k, v in checks.items()))
    print("BENCH_JSON " + json.dumps(res, sort_keys=True, default=str))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
