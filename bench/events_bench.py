"""Event throughput: one producer, 2 M getpid() calls, and four consumers of the same records.

Consumers, each in its own run against a fresh program:
* ``c``: libbpf's ``ring_buffer__poll``/``perf_buffer__poll`` in a C program built here with gcc,
  loading the very object file the lab's CO-RE cell compiled to;
* ``lab_core``: the lab's CO-RE cell, ``h.events("events")``;
* ``lab_bcc``: the same program as a BCC cell, ``h.events("events")``;
* ``bcc``: plain BCC, ``open_ring_buffer``/``open_perf_buffer`` with a counting Python callback.

Every record the program tried is delivered, counted as failed in the program
(``stats[1]``; for perf buffers these are the records the kernel reports lost), or still unread
when the consumer stopped.
Rates are delivered records over the producer's own run time. ``consumer_cpu_s`` is the
consumer's CPU time over the whole run (the C program's, from wait4; the reading thread's for
the lab and plain BCC), so a reader that burns a core while records flow shows here.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import threading
import time

from programs import BCC_SEC, BCC_STREAM, CALLS, CORE_STREAM, PERF_PAGES, TRACEPOINT

# After the producer exits, consumers get this long to empty their buffer before they are stopped
# (the C consumer and the lab's events() alike, by SIGINT, which they both treat as Ctrl-C).
DRAIN_S = 1.0
# A hard cap on one run, far above a run's length on a busy machine.
CAP_S = 120.0


class Producer:
    def __init__(self, exe: str, calls: int = CALLS):
        self.proc = subprocess.Popen([exe, str(calls)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid = self.proc.pid

    def release(self) -> None:
        try:
            self.proc.stdin.write("g")
            self.proc.stdin.flush()
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError):  # gone already: finish() reports it
            pass

    def finish(self, timeout: float = CAP_S) -> dict:
        self.proc.wait(timeout=timeout)
        calls, elapsed = self.proc.stdout.read().split()
        self.proc.stdout.close()
        return {"calls": int(calls), "producer_s": float(elapsed)}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _thread_cpu() -> float:
    """CPU seconds of the calling thread: the consumer's own work, not the watcher's."""
    u = resource.getrusage(resource.RUSAGE_THREAD)
    return u.ru_utime + u.ru_stime


def _fds(kind: str) -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == f"anon_inode:[{kind}]"
        except OSError:
            continue
    return n


def _figures(calls: dict, delivered: int, tried: int, failed: int, kernel_lost: int) -> dict:
    return {**calls, "tried": tried, "delivered": delivered, "failed_in_program": failed,
            # A perf output the kernel lost is also a failed output in the program: counted once.
            "kernel_lost": kernel_lost, "unread": tried - failed - delivered,
            "delivered_pct": 100.0 * delivered / tried if tried else 0.0,
            "delivered_per_s": delivered / calls["producer_s"]}


def run_c(consumer: str, producer: str, obj_path: str) -> dict:
    prod = Producer(producer)
    cons = subprocess.Popen([consumer, obj_path, str(prod.pid), str(PERF_PAGES)], stdout=subprocess.PIPE, text=True)
    try:
        if cons.stdout.readline().strip() != "ready":
            raise RuntimeError(f"C consumer failed to start (exit {cons.wait()})")
        prod.release()
        calls = prod.finish()
        time.sleep(DRAIN_S)
        cons.send_signal(signal.SIGINT)
        out = json.loads(cons.stdout.read())
        _, status, usage = os.wait4(cons.pid, 0)
        cons.returncode = os.waitstatus_to_exitcode(status)
        if cons.returncode != 0:
            raise RuntimeError(f"C consumer exited with {cons.returncode}")
        fig = _figures(calls, out["delivered"], out["tried"], out["failed_in_program"], out["kernel_lost"])
        fig["consumer_cpu_s"] = usage.ru_utime + usage.ru_stime
        return fig
    finally:
        prod.kill()
        if cons.poll() is None:
            cons.kill()
            cons.wait()
        cons.stdout.close()


def _stop_lab_reader(prod: Producer, epolls_before: int, box: dict) -> None:
    """Release the producer once events() polls (its epoll fd exists); Ctrl-C it after the drain."""
    deadline = time.monotonic() + 10
    while _fds("eventpoll") <= epolls_before and time.monotonic() < deadline:
        time.sleep(0.002)
    prod.release()
    try:
        box["calls"] = prod.finish()
    except Exception as exc:  # reported by the main thread
        box["error"] = exc
    time.sleep(DRAIN_S)
    box["interrupting"] = True
    os.kill(os.getpid(), signal.SIGINT)


def run_lab(h, producer: str, lab) -> dict:
    """h: an attached lab handle of the stream program; ``lab`` aims it and reads its counters."""
    prod = Producer(producer)
    box: dict = {}
    lab.set_target(h, prod.pid)
    watcher = threading.Thread(target=_stop_lab_reader, args=(prod, _fds("eventpoll"), box), daemon=True)
    try:
        watcher.start()
        # max_events above what the producer can cause: the run always ends by the watcher's Ctrl-C,
        # so the SIGINT cannot land after events() returned.
        cpu = _thread_cpu()
        df = h.events("events", duration=CAP_S, max_events=2 * CALLS, page_cnt=PERF_PAGES)
        cpu = _thread_cpu() - cpu
        watcher.join()
    finally:
        prod.kill()
    if "error" in box:
        raise box["error"]
    if not box.get("interrupting"):
        raise RuntimeError(f"events() returned before the producer finished ({CAP_S} s cap?)")
    attrs = dict(df.attrs)
    out = _figures(box["calls"], len(df), lab.percpu_sum(h, 0), lab.percpu_sum(h, 1),
                   int(attrs.get("kernel_lost") or 0))
    out["attrs"] = {k: attrs.get(k) for k in ("kernel_lost", "dropped_by_limit", "lost", "interrupted")}
    out["right_pid"] = bool(len(df) == 0 or (df["pid"] == prod.pid).all())
    out["consumer_cpu_s"] = cpu  # includes the DataFrame built at the end
    return out


def run_plain_bcc(kind: str, producer: str) -> dict:
    import bcc

    b = bcc.BPF(text=BCC_STREAM[kind])
    prod = Producer(producer)
    counts = {"delivered": 0, "lost": 0}

    def on_event(*_):
        counts["delivered"] += 1

    def on_lost(n):
        counts["lost"] += n

    try:
        b.attach_tracepoint(tp=TRACEPOINT, fn_name="on_getpid")
        b["target"][b["target"].Key(0)] = b["target"].Leaf(prod.pid)
        if kind == "ringbuf":
            b["events"].open_ring_buffer(on_event)
            poll, drain = b.ring_buffer_poll, b.ring_buffer_consume
        else:
            b["events"].open_perf_buffer(on_event, page_cnt=PERF_PAGES, lost_cb=on_lost)
            poll, drain = b.perf_buffer_poll, b.perf_buffer_consume
        prod.release()
        cpu = _thread_cpu()
        while prod.proc.poll() is None:
            poll(100)
        calls = prod.finish()
        end = time.monotonic() + DRAIN_S
        while time.monotonic() < end:
            poll(100)
        drain()
        cpu = _thread_cpu() - cpu
        stats = b["stats"][b["stats"].Key(0)], b["stats"][b["stats"].Key(1)]
        fig = _figures(calls, counts["delivered"], sum(stats[0]), sum(stats[1]), counts["lost"])
        fig["consumer_cpu_s"] = cpu
        return fig
    finally:
        prod.kill()
        b.cleanup()


def bench_events(native: dict, lab) -> dict:
    """lab: callables building the CO-RE and BCC stream handles (see bench_lab)."""
    out: dict = {}
    for kind in ("ringbuf", "perf"):
        res: dict = {}
        core = lab.core(CORE_STREAM[kind])
        try:
            obj_path = lab.core_object_path(CORE_STREAM[kind])
            res["lab_core"] = run_lab(core, native["producer"], lab)
        finally:
            lab.detach(core)
        res["c"] = run_c(native["consumer"], native["producer"], obj_path)
        bcc_h = lab.bcc(BCC_STREAM[kind], BCC_SEC)
        try:
            res["lab_bcc"] = run_lab(bcc_h, native["producer"], lab)
        finally:
            lab.detach(bcc_h)
        res["bcc"] = run_plain_bcc(kind, native["producer"])
        out[kind] = res
    return out
