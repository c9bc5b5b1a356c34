"""Benchmarks for the lab against plain BCC and plain C libbpf, all measured in the same run.

Run as root from the repository root (``make bench`` does, then regenerates the README table):

    .venv/bin/python bench/bench_lab.py [--quick] [--out bench/results]

Sections: cell latency (cells_bench), a 1 M-entry hash map (maps_bench), event throughput
(events_bench). Prints medians and best-of with ratios, writes every figure and the machine
(kernel, CPU, load before and after, tool versions) to bench/results/<date>-<host>.json,
and exits 1 if a check failed.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Runnable from a checkout without installing the package; the bench modules import each other flat.
sys.path[:0] = [str(HERE.parent), str(HERE)]

from cells_bench import bench_breakdown, bench_cells  # noqa: E402
from events_bench import bench_events  # noqa: E402
from maps_bench import bench_hash  # noqa: E402
from programs import CONSUMER_C, HASH_CELL, PRODUCER_C  # noqa: E402
from report import print_report  # noqa: E402

from ebpf_magic import libbpf as lab_libbpf  # noqa: E402
from ebpf_magic import loader  # noqa: E402
from ebpf_magic.privileges import check_privileges  # noqa: E402


class Lab:
    """How the event and map sections build, aim, read and detach the lab's handles."""

    def __init__(self):
        self.prog_ids: set[int] = set()
        self.live: list = []

    def _track(self, build):
        before = set(_own_prog_ids())
        h = build()
        self.live.append(h)
        self.prog_ids |= set(_own_prog_ids()) - before
        return h

    def core(self, text: str):
        return self._track(lambda: loader.build(text, engine="core", name="bench_stream"))

    def bcc(self, text: str, sec: str, name: str = "bench_stream"):
        return self._track(lambda: loader.build(text, sec, name=name))

    @staticmethod
    def core_object_path(text: str) -> str:
        from ebpf_magic.core import toolchain

        return toolchain.compile_cell(text).path  # the cache hit of the object just loaded

    @staticmethod
    def set_target(h, pid: int) -> None:
        view = h["target"]
        if hasattr(view, "info"):  # CO-RE maps are read-only in the lab's API: write through the fd
            import ctypes as ct

            key, value = ct.c_uint32(0), ct.c_uint32(pid)
            if lab_libbpf.lib().bpf_map_update_elem(view.info.fd, ct.byref(key), ct.byref(value), 0) != 0:
                raise OSError(ct.get_errno(), "bpf_map_update_elem(target)")
        else:
            view[0] = pid

    @staticmethod
    def percpu_sum(h, key: int) -> int:
        df = h["stats"].to_frame()
        return int(df.loc[df["key"] == key, "value"].sum())

    def detach(self, h) -> None:
        try:
            h.detach()
        finally:
            if h in self.live:
                self.live.remove(h)

    def detach_all(self) -> None:
        for h in list(self.live):
            self.detach(h)


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


def _version(cmd: list[str]) -> str:
    exe = shutil.which(cmd[0])
    if not exe:
        return "missing"
    out = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0].strip() if out else "unknown"


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
    from ebpf_magic.core import toolchain

    return {"host": socket.gethostname(), "kernel": platform.release(), "cpu": cpu, "nproc": os.cpu_count(),
            "bcc": bcc_version, "libbpf": lab_libbpf.version(), "clang": toolchain.clang()[1],
            "gcc": _version(["gcc", "--version"]), "python": platform.python_version(),
            "loadavg_start": _loadavg()}


def _loadavg() -> list[float]:
    # The lab machine is shared; a busy neighbour shows up here and in the timings.
    return [round(x, 2) for x in os.getloadavg()]


def build_native(tmp: str) -> dict:
    """The producer and the C libbpf consumer, compiled here with gcc against the system libbpf."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if not gcc:
        raise RuntimeError("gcc is needed to build the C producer and consumer (apt install gcc libbpf-dev)")
    out = {}
    for name, src, libs in (("producer", PRODUCER_C, []), ("consumer", CONSUMER_C, ["-lbpf"])):
        c, exe = os.path.join(tmp, f"{name}.c"), os.path.join(tmp, name)
        with open(c, "w") as f:
            f.write(src)
        subprocess.run([gcc, "-O2", "-o", exe, c, *libs], check=True, capture_output=True, text=True)
        out[name] = exe
    return out


def start_ipython():
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython as start

    start()
    ip = get_ipython()
    ip.run_line_magic("load_ext", "ebpf_magic")
    return ip


def hash_section(lab: Lab, reps: int, items_reps: int) -> dict:
    h = lab.bcc(HASH_CELL, "tracepoint/syscalls/sys_enter_getpid", name="bench_hash")
    try:
        return bench_hash(h, reps, items_reps, lab)  # lab builds the CO-RE twin of the map
    finally:
        lab.detach(h)


def result_path(out_dir: Path) -> Path:
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M")
    return out_dir / f"{stamp}-{socket.gethostname()}.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (3), BCC items() once")
    ap.add_argument("--out", default=str(HERE / "results"), help="folder for the result JSON")
    ap.add_argument("--only", nargs="*", choices=["cells", "breakdown", "hash", "events"],
                    help="run only these sections")
    args = ap.parse_args()
    reps = 3 if args.quick else 7
    check_privileges()
    res: dict = {"quick": args.quick, "reps": reps, "machine": machine_info(),
                 "started": datetime.datetime.now().isoformat(timespec="seconds")}
    fds_before = _own_bpf_fds()
    lab = Lab()
    errors: dict[str, str] = {}
    wanted = set(args.only or ["cells", "breakdown", "hash", "events"])

    def section(name, fn, *a):
        if name not in wanted:
            return
        print(f"... {name}", file=sys.stderr, flush=True)
        res.setdefault("loadavg_at", {})[name] = _loadavg()
        try:
            res[name] = fn(*a)
        except Exception as exc:  # one broken section should not hide the others' figures
            traceback.print_exc()
            errors[name] = f"{type(exc).__name__}: {exc}"

    ip = start_ipython()
    try:
        section("cells", bench_cells, ip, reps)
        section("breakdown", bench_breakdown, reps)
        section("hash", hash_section, lab, reps, 1)  # BCC items() alone takes ~30 s for 1 M entries
        with tempfile.TemporaryDirectory(prefix="bench_lab_") as tmp:
            section("events", lambda: bench_events(build_native(tmp), lab))
    finally:
        lab.detach_all()
        ip.run_line_magic("bpf_detach", "--all")

    from ebpf_magic.attach.perf import wait_closed

    wait_closed()  # detached tracepoints' perf events close on a thread: count fds once they are
    system_after = _system_prog_ids()
    fds_after = _own_bpf_fds()
    still_loaded = sorted(lab.prog_ids & system_after) if system_after is not None else None
    res["machine"]["loadavg_end"] = _loadavg()
    res["leaks"] = {"our_prog_ids": sorted(lab.prog_ids), "our_progs_still_loaded": still_loaded,
                    "own_bpf_fds_before": fds_before, "own_bpf_fds_after": fds_after}
    res["errors"] = errors
    res["checks"] = checks(res, still_loaded, fds_before, fds_after)
    print_report(res)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = result_path(out_dir)
    path.write_text(json.dumps(res, indent=1, sort_keys=True, default=str) + "\n")
    print(f"wrote {path}")
    return 0 if all(res["checks"].values()) else 1


def checks(res: dict, still_loaded, fds_before, fds_after) -> dict:
    ev = res.get("events", {})
    runs = [r for kind in ev.values() for r in kind.values()]
    out = {
        "no_prog_left": still_loaded == [] if still_loaded is not None else not _own_prog_ids(),
        "no_fd_left": fds_after == fds_before,
        "no_errors": not res["errors"],
        # Every record the program tried is delivered, failed in the program, lost in the kernel or unread.
        "events_accounted": all(r["unread"] >= 0 for r in runs),
        "events_right_pid": all(r.get("right_pid", True) for r in runs),
    }
    if "hash" in res:
        out["hash_rows"] = res["hash"]["rows_ok"]
        out["hash_values"] = res["hash"]["values_ok"]
    return out


if __name__ == "__main__":
    sys.exit(main())
