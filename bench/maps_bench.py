"""A 1 M-entry hash map: the lab's DataFrame against the batch syscalls alone and BCC's readers,
in both engines (the BCC cell's table and a CO-RE cell's map of the same layout)."""
from __future__ import annotations

import ctypes as ct

import numpy as np
from cells_bench import summary, timed
from programs import HASH_ENTRIES

# The CO-RE twin of programs.HASH_CELL: same key and value types, same size.
CORE_HASH_CELL = r"""#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, HASH_ENTRIES);
         __type(key, u32); __type(value, u64); } h SEC(".maps");
SEC("tp/syscalls/sys_enter_getpid")
int touch_h(void *ctx)
{
    u32 k = 0;
    bpf_map_lookup_elem(&h, &k);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
""".replace("HASH_ENTRIES", str(HASH_ENTRIES))


def _contents():
    keys = np.arange(HASH_ENTRIES, dtype=np.uint32)
    return keys, keys.astype(np.uint64) * 3


def _frame_against_syscalls(view, fd: int, reps: int):
    """Alternating runs of the floor and of to_frame(), so both see the same neighbours' load."""
    from ebpf_magic import maps

    info = maps._map_info(fd)
    syscalls, frames = [], []
    got = df = None
    for _ in range(reps):
        # The floor: the same BPF_MAP_LOOKUP_BATCH calls into preallocated numpy buffers, nothing else.
        dt, got = timed(lambda: maps._batch_lookup(fd, info.key_size, info.value_size, info.max_entries))
        syscalls.append(dt)
        dt, df = timed(view.to_frame)
        frames.append(dt)
    return summary(syscalls), summary(frames), got[2], df


def _ratios(out: dict, frame_key: str, floor_key: str, prefix: str) -> None:
    frame, floor = out[frame_key], out[floor_key]
    out[f"{prefix}_over_syscalls"] = frame["median_s"] / floor["median_s"]
    out[f"{prefix}_over_syscalls_best"] = frame["best_s"] / floor["best_s"]
    # CPU time is the work itself; on the shared machine wall time adds whatever else ran.
    out[f"{prefix}_over_syscalls_cpu"] = frame["cpu_median_s"] / floor["cpu_median_s"]


def _right(df, keys) -> bool:
    return (len(df) == len(keys) and bool((df["key"].to_numpy() == keys).all())
            and bool((df["value"].to_numpy() == keys.astype(np.uint64) * 3).all()))


def bench_hash(h, reps: int, items_reps: int, lab=None) -> dict:
    """h: an attached BCC-engine handle of HASH_CELL; lab (bench_lab.Lab), if given, builds the CO-RE twin."""
    view = h["h"]
    table = view.table
    keys, values = _contents()
    # ctypes views of the numpy buffers: one BPF_MAP_UPDATE_BATCH, no per-entry Python.
    fill, _ = timed(lambda: table.items_update_batch((table.Key * HASH_ENTRIES).from_buffer(keys),
                                                     (table.Leaf * HASH_ENTRIES).from_buffer(values)))
    floor, frame, syscall_rows, df = _frame_against_syscalls(view, table.map_fd, reps)
    batch, items = [], []
    for _ in range(items_reps):
        dt, got_batch = timed(lambda: list(table.items_lookup_batch()))
        batch.append(dt)
    for _ in range(items_reps):
        dt, got_items = timed(lambda: list(table.items()))
        items.append(dt)
    out = {"entries": HASH_ENTRIES, "fill": summary([fill]), "batch_syscalls": floor,
           "to_frame": frame, "bcc_items_lookup_batch": summary(batch), "bcc_items": summary(items),
           "rows": len(df), "syscall_rows": syscall_rows, "bcc_batch_rows": len(got_batch),
           "bcc_items_rows": len(got_items)}
    out["rows_ok"] = len(df) == HASH_ENTRIES == syscall_rows == len(got_batch) == len(got_items)
    out["values_ok"] = _right(df, keys)
    _ratios(out, "to_frame", "batch_syscalls", "to_frame")
    if lab is not None:
        out.update(bench_core_hash(lab, reps))
        out["rows_ok"] = out["rows_ok"] and out["core_rows"] == out["core_syscall_rows"] == HASH_ENTRIES
        out["values_ok"] = out["values_ok"] and out["core_values_ok"]
    return out


def bench_core_hash(lab, reps: int) -> dict:
    """The same map read through a CO-RE cell (its dtypes come from BTF, not ctypes)."""
    from ebpf_magic import libbpf

    h = lab.core(CORE_HASH_CELL)
    try:
        fd = h["h"].info.fd
        keys, values = _contents()
        count = ct.c_uint32(HASH_ENTRIES)
        # CO-RE maps are read-only in the lab's API: fill through the fd.
        ret = libbpf.lib().bpf_map_update_batch(fd, ct.c_void_p(keys.ctypes.data), ct.c_void_p(values.ctypes.data),
                                                ct.byref(count), None)
        if ret != 0 or count.value != HASH_ENTRIES:
            raise OSError(-ret, f"bpf_map_update_batch filled {count.value} of {HASH_ENTRIES}")
        floor, frame, syscall_rows, df = _frame_against_syscalls(h["h"], fd, reps)
    finally:
        lab.detach(h)
    out = {"core_batch_syscalls": floor, "core_to_frame": frame, "core_rows": len(df),
           "core_syscall_rows": syscall_rows, "core_values_ok": _right(df, keys)}
    _ratios(out, "core_to_frame", "core_batch_syscalls", "core_to_frame")
    return out
