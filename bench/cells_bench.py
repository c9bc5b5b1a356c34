"""Cell latency: a new CO-RE cell from magic to attached, an unchanged re-run, the same program in
BCC, detach times, and where a new CO-RE cell's time goes (header, clang cold and warm, kernel BTF
against the cell's subset BTF, libbpf load, attach).

Each figure has wall time and CPU time (this process, its children and the warm clang's compiles):
on a shared 2-core
machine the wall time is mostly waiting for a CPU, the CPU time is the work.
"""
from __future__ import annotations

import ctypes as ct
import os
import resource
import statistics
import subprocess
import tempfile
import time

from programs import BCC_CELL, CORE_CELL, TRACEPOINT


def cpu_now() -> float:
    """CPU seconds of this process, its children, and the compiles the lab's warm clang forked."""
    from ebpf_magic.core import warm_clang

    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime + warm_clang.cpu_seconds()


def timed(fn):
    c, t = cpu_now(), time.perf_counter()
    result = fn()
    return (time.perf_counter() - t, cpu_now() - c), result


def summary(samples: list[tuple[float, float]]) -> dict:
    wall, cpu = [s[0] for s in samples], [s[1] for s in samples]
    return {"wall_s": wall, "cpu_s": cpu, "median_s": statistics.median(wall), "best_s": min(wall),
            "cpu_median_s": statistics.median(cpu)}


def _nonce(tag: str, i: int) -> str:
    return f"{tag} {i} {time.time_ns()}"


def bench_cells(ip, reps: int) -> dict:
    """``ip``: an IPython shell with the extension loaded, so the figures are the magic's own."""
    import bcc

    new, rerun, core_detach, lab_bcc, lab_bcc_detach, plain, plain_detach = ([] for _ in range(7))
    for i in range(reps):
        cell = CORE_CELL % {"nonce": _nonce("core", i)}
        dt, h = timed(lambda cell=cell: ip.run_cell_magic("bpf", "-n bench_core", cell))
        new.append(dt)
        core_detach.append(timed(h.detach)[0])
        dt, h = timed(lambda cell=cell: ip.run_cell_magic("bpf", "-n bench_core", cell))
        rerun.append(dt)
        h.detach()

        text = BCC_CELL % {"nonce": _nonce("bcc", i)}
        dt, h = timed(lambda text=text: ip.run_cell_magic("bpf", "tracepoint/syscalls/sys_enter_getpid "
                                                          "-n bench_bcc", text))
        lab_bcc.append(dt)
        lab_bcc_detach.append(timed(h.detach)[0])

        def plain_bcc(text=text):
            b = bcc.BPF(text=text)
            b.attach_tracepoint(tp=TRACEPOINT, fn_name="on_getpid")
            return b

        dt, b = timed(plain_bcc)
        plain.append(dt)
        plain_detach.append(timed(lambda b=b: b.detach_tracepoint(tp=TRACEPOINT))[0])
        b.cleanup()
    out = {"reps": reps, "core_new": summary(new), "core_rerun": summary(rerun),
           "core_detach": summary(core_detach), "lab_bcc_new": summary(lab_bcc),
           "lab_bcc_detach": summary(lab_bcc_detach), "bcc_plain_new": summary(plain),
           "bcc_plain_detach": summary(plain_detach)}
    out["bcc_over_core_new"] = out["bcc_plain_new"]["median_s"] / out["core_new"]["median_s"]
    out["bcc_over_core_new_best"] = out["bcc_plain_new"]["best_s"] / out["core_new"]["best_s"]
    return out


# --------------------------------------------------------------------------- where the time goes

def _clang_run(clang: str, flags: list[str], src: str, must_work: bool = True, warm: bool = False
               ) -> tuple[float, float]:
    from ebpf_magic.core import warm_clang

    args = [clang, *flags, "-c", src, "-o", src + ".o"]
    if warm:
        dt, proc = timed(lambda: warm_clang.run(args, os.path.dirname(src)))
        if proc is None:
            raise RuntimeError("the warm clang is not running")
    else:
        dt, proc = timed(lambda: subprocess.run(args, capture_output=True, text=True))
    if proc.returncode != 0 and must_work:
        raise RuntimeError(f"{clang} {' '.join(flags)}: {proc.stderr[-500:]}")
    return dt


def bench_breakdown(reps: int) -> dict:
    from ebpf_magic import libbpf
    from ebpf_magic.attach import Options
    from ebpf_magic.core import toolchain, vmlinux_subset
    from ebpf_magic.core.obj import CoreObject

    d = toolchain.kernel_dir()
    chosen, version = toolchain.clang()
    base = toolchain.base_flags(d)
    names = vmlinux_subset.names_in(CORE_CELL)
    sub = vmlinux_subset.header(d, names)
    ids, protos = vmlinux_subset.roots(names | set(vmlinux_subset._ALWAYS), vmlinux_subset.index(d))
    out: dict = {"clang": version, "subset_header_lines": sum(1 for _ in open(os.path.join(sub, "vmlinux.h"))),
                 "whole_header_lines": sum(1 for _ in open(os.path.join(d, "vmlinux.h")))}
    out["subset_header_generate"] = summary([timed(lambda: vmlinux_subset._render(ids, protos))[0]
                                             for _ in range(reps)])
    variants = {
        "whole_pch_O2_g": (chosen, ["-include-pch", toolchain.pch(), *base]),
        "whole_no_pch_O2_g": (chosen, base),
        "subset_O2_g": (chosen, ["-I", sub, *base]),
        # The same compile forked from the lab's warm clang (what a new cell runs).
        "subset_O2_g_warm": (chosen, ["-I", sub, *base]),
        # Without -g there is no BTF, so BPF_CORE_READ is an error: timed to show what -g costs.
        "subset_O2_no_g": (chosen, ["-I", sub, *[f for f in base if f != "-g"]]),
        "subset_O0_g": (chosen, ["-I", sub, *[("-O0" if f == "-O2" else f) for f in base]]),
    }
    for other in ("clang-14", "clang-16"):
        from shutil import which

        if which(other) and not chosen.endswith(other):
            variants[f"subset_O2_g_{other}"] = (which(other), ["-I", sub, *base])
    with tempfile.TemporaryDirectory(prefix="bench_clang_") as tmp:
        src = os.path.join(tmp, "cell.c")
        for label, (clang, flags) in variants.items():
            samples = []
            for i in range(reps if "no_pch" not in label else max(1, reps // 2)):
                with open(src, "w") as f:
                    f.write(CORE_CELL % {"nonce": _nonce(label, i)})
                samples.append(_clang_run(clang, flags, src, must_work="no_g" not in label, warm=label.endswith("_warm")))
            out[label] = summary(samples)
    # libbpf: the kernel BTF parse each load does (needed for CO-RE relocations), then the rest.
    lib = libbpf.lib()

    def parse_btf():
        lib.btf__free(lib.btf__load_vmlinux_btf())

    out["kernel_btf_parse"] = summary([timed(parse_btf)[0] for _ in range(reps)])
    compiled = toolchain.compile_cell(CORE_CELL % {"nonce": _nonce("breakdown", 0)})  # new: as a new cell loads
    if compiled.target_btf:
        lib.btf__parse_raw.restype, lib.btf__parse_raw.argtypes = ct.c_void_p, [ct.c_char_p]
        out["subset_btf_bytes"] = os.path.getsize(compiled.target_btf)
        out["subset_btf_parse"] = summary([timed(lambda: lib.btf__free(lib.btf__parse_raw(
            compiled.target_btf.encode())))[0] for _ in range(reps)])
    # libbpf_load: as a cell loads (relocated against the subset BTF); _whole_btf: libbpf parses the kernel's.
    for label, target in (("", compiled.target_btf), ("_whole_btf", None)):
        opens, loads, attaches, detaches = [], [], [], []
        for _ in range(reps):
            dt, obj = timed(lambda target=target: CoreObject(compiled.obj, "bench_bd", CORE_CELL, target))
            opens.append(dt)
            try:
                loads.append(timed(obj.load)[0])
                dt, links = timed(lambda obj=obj: obj.attach(Options()))
                attaches.append(dt)
                detaches.append(timed(lambda links=links: [a.detach() for a in links])[0])
            finally:
                obj.close()
        out[f"libbpf_load{label}"] = summary(loads)
        if not label:
            out.update({"libbpf_open": summary(opens), "attach": summary(attaches), "detach": summary(detaches)})
    return out
