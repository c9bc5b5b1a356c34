"""The bench's table, from a result dict: printed by bench_lab and written into the README by readme_table.

Every row compares figures of the same run; nothing here is a typed-in number except the targets
of issue 11, which are labelled as targets.
"""
from __future__ import annotations


def _s(x) -> str:
    return "-" if x is None else (f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s")


def _t(fig: dict | None) -> str:
    """median (best-of, CPU median)"""
    if not fig:
        return "-"
    return f"{_s(fig['median_s'])} (best {_s(fig['best_s'])}, CPU {_s(fig['cpu_median_s'])})"


def _rate(x) -> str:
    return f"{x / 1000:.0f} k/s"


def _ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def rows(res: dict) -> list[tuple[str, str, str, str]]:
    """(measure, lab, same run's reference, comparison)"""
    out: list[tuple[str, str, str, str]] = []
    c = res.get("cells")
    if c:
        out += [
            ("new CO-RE cell (task->tgid), magic to attached", _t(c["core_new"]),
             "plain BCC, same program: " + _t(c["bcc_plain_new"]),
             f"BCC/lab {c['bcc_over_core_new']:.1f}x (best {c['bcc_over_core_new_best']:.1f}x); target >= 10x, "
             f"<= 150 ms"),
            ("unchanged CO-RE re-run", _t(c["core_rerun"]), "", "target <= 30 ms"),
            ("same program as a lab BCC cell", _t(c["lab_bcc_new"]), "plain BCC: " + _t(c["bcc_plain_new"]),
             _ratio(c["lab_bcc_new"]["median_s"], c["bcc_plain_new"]["median_s"])),
            ("detach, BCC cell (tracepoint)", _t(c["lab_bcc_detach"]),
             "plain BCC detach_tracepoint: " + _t(c["bcc_plain_detach"]), "target <= 10 ms"),
            ("detach, CO-RE cell", _t(c["core_detach"]), "", ""),
        ]
    b = res.get("breakdown")
    if b:
        for key in ("subset_header_generate", "subset_O2_g", "subset_O2_g_warm", "subset_O2_g_clang-14",
                    "subset_O2_g_clang-16", "subset_O2_no_g", "subset_O0_g", "whole_pch_O2_g", "whole_no_pch_O2_g",
                    "kernel_btf_parse", "subset_btf_parse", "libbpf_open", "libbpf_load", "libbpf_load_whole_btf",
                    "attach", "detach"):
            if key in b:
                out.append((f"  part of a new CO-RE cell: {key}", _t(b[key]), "", ""))
    h = res.get("hash")
    if h:
        n = f"{h['entries'] >> 20} M" if h["entries"] >= 1 << 20 else str(h["entries"])
        out += [
            (f"{n}-entry hash to DataFrame (to_frame)", _t(h["to_frame"]),
             "batch syscalls alone: " + _t(h["batch_syscalls"]),
             f"{h['to_frame_over_syscalls']:.2f}x (best {h['to_frame_over_syscalls_best']:.2f}x, "
             f"CPU {h['to_frame_over_syscalls_cpu']:.2f}x); target <= 1.3x"),
            ("  BCC items_lookup_batch()", _t(h["bcc_items_lookup_batch"]), "",
             _ratio(h["bcc_items_lookup_batch"]["median_s"], h["to_frame"]["median_s"]) + " of to_frame"),
            ("  BCC items()", _t(h["bcc_items"]), "",
             _ratio(h["bcc_items"]["median_s"], h["to_frame"]["median_s"]) + " of to_frame"),
        ]
        if "core_to_frame" in h:
            out.append(("  same map in a CO-RE cell (to_frame)", _t(h["core_to_frame"]),
                        "batch syscalls alone: " + _t(h["core_batch_syscalls"]),
                        f"{h['core_to_frame_over_syscalls']:.2f}x (best {h['core_to_frame_over_syscalls_best']:.2f}x, "
                        f"CPU {h['core_to_frame_over_syscalls_cpu']:.2f}x); target <= 1.3x"))
    for kind, runs in res.get("events", {}).items():
        ref = runs.get("c")
        for who, label in (("lab_core", "lab CO-RE cell, h.events()"), ("lab_bcc", "lab BCC cell, h.events()"),
                           ("bcc", "plain BCC callbacks"), ("c", "plain C libbpf")):
            r = runs.get(who)
            if not r:
                continue
            fig = (f"{r['delivered']:,} of {r['tried']:,} ({r['delivered_pct']:.1f} %), "
                   f"{_rate(r['delivered_per_s'])}; dropped in program {r['failed_in_program']:,}, "
                   f"kernel lost {r['kernel_lost']:,}, unread {r['unread']:,}"
                   + (f"; consumer CPU {r['consumer_cpu_s']:.2f} s" if "consumer_cpu_s" in r else ""))
            cmp = "" if who == "c" or not ref else (
                f"rate {_ratio(r['delivered_per_s'], ref['delivered_per_s'])} of C; "
                f"delivered {r['delivered_pct'] - ref['delivered_pct']:+.1f} points vs C")
            out.append((f"{kind}: {label}", fig, "C: " + (f"{ref['delivered_pct']:.1f} %, "
                        f"{_rate(ref['delivered_per_s'])}" if ref else "-") if who != "c" else "", cmp))
    return out


def machine_line(res: dict) -> str:
    m = res["machine"]
    return (f"{m['kernel']}, {m['cpu']}, {m['nproc']} CPUs; load {m['loadavg_start']} -> {m.get('loadavg_end')}; "
            f"bcc {m['bcc']}, libbpf {m['libbpf']}, {m['clang']}, Python {m['python']}; "
            f"{res['reps']} repetitions per latency figure"
            + "".join(f"; load at {k}: {v[0]}" for k, v in res.get("loadavg_at", {}).items()))


def print_report(res: dict) -> None:
    print("machine: " + machine_line(res))
    table = rows(res)
    head = ("measure", "lab", "reference (same run)", "comparison")
    widths = [min(70, max(len(r[i]) for r in [head, *table])) for i in range(4)]
    for r in [head, tuple("-" * w for w in widths), *table]:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(r, widths, strict=True)).rstrip())
    for name, err in res.get("errors", {}).items():
        print(f"ERROR in {name}: {err}")
    print("checks: " + ", ".join(f"{k}={'ok' if v else 'FAILED'}" for k, v in res.get("checks", {}).items()))
