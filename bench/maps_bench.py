"""A 1 M-entry hash map: the lab's DataFrame against the batch syscalls alone and BCC's readers."""
from __future__ import annotations

import numpy as np
from cells_bench import summary, timed
from programs import HASH_ENTRIES


def bench_hash(h, reps: int, items_reps: int) -> dict:
    """h: an attached BCC-engine handle of HASH_CELL."""
    from ebpf_magic import maps

    view = h["h"]
    table = view.table
    keys = np.arange(HASH_ENTRIES, dtype=np.uint32)
    values = keys.astype(np.uint64) * 3
    # ctypes views of the numpy buffers: one BPF_MAP_UPDATE_BATCH, no per-entry Python.
    fill, _ = timed(lambda: table.items_update_batch((table.Key * HASH_ENTRIES).from_buffer(keys),
                                                     (table.Leaf * HASH_ENTRIES).from_buffer(values)))
    info = maps._map_info(table.map_fd)
    syscalls, frames, batch, items = [], [], [], []
    df = None
    for _ in range(reps):
        # The floor: the same BPF_MAP_LOOKUP_BATCH calls into preallocated numpy buffers, nothing else.
        dt, got = timed(lambda: maps._batch_lookup(table.map_fd, info.key_size, info.value_size,
                                                   info.max_entries))
        syscalls.append(dt)
        dt, df = timed(view.to_frame)
        frames.append(dt)
    for _ in range(items_reps):
        dt, got_batch = timed(lambda: list(table.items_lookup_batch()))
        batch.append(dt)
    for _ in range(items_reps):
        dt, got_items = timed(lambda: list(table.items()))
        items.append(dt)
    out = {"entries": HASH_ENTRIES, "fill": summary([fill]), "batch_syscalls": summary(syscalls),
           "to_frame": summary(frames), "bcc_items_lookup_batch": summary(batch), "bcc_items": summary(items),
           "rows": len(df), "syscall_rows": got[2], "bcc_batch_rows": len(got_batch), "bcc_items_rows": len(got_items)}
    out["rows_ok"] = len(df) == HASH_ENTRIES == got[2] == len(got_batch) == len(got_items)
    out["values_ok"] = bool((df["value"].to_numpy() == df["key"].to_numpy().astype(np.uint64) * 3).all())
    out["to_frame_over_syscalls"] = out["to_frame"]["median_s"] / out["batch_syscalls"]["median_s"]
    out["to_frame_over_syscalls_best"] = out["to_frame"]["best_s"] / out["batch_syscalls"]["best_s"]
    # CPU time is the work itself; on the shared machine wall time adds whatever else ran.
    out["to_frame_over_syscalls_cpu"] = out["to_frame"]["cpu_median_s"] / out["batch_syscalls"]["cpu_median_s"]
    return out
