"""BPF maps as pandas DataFrames.

Three layers, each usable on its own:

* ``dtypes``: ``dtype_of`` maps a ctypes type (what BCC builds from a map's
  key/leaf description) to a numpy dtype with the same memory layout, so raw
  bytes from the kernel can be viewed without a per-element Python loop, and
  ``flatten`` turns a structured numpy array into named columns;
* ``maps``: ``read_map_fd`` reads a whole map with one batch syscall;
* here: ``map_frame`` / ``frame_from_arrays`` build the frame (and ``hist``
  the log2 histograms, re-exported here).

Nothing here imports BCC or IPython: a "table" is anything with ``Key``,
``Leaf`` and ``map_fd`` (BCC's table objects qualify).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .dtypes import BITS_KEY, PAD_PREFIX, dtype_of, extract_bits, flatten
from .hist import Log2Hist, log2_hist, log2_hist_from_arrays
from .maps import RawMap, possible_cpus, read_map_fd, read_table
from .uapi import MapType

__all__ = ["Log2Hist", "RawMap", "dtype_of", "flatten", "frame_from_arrays", "log2_hist",
           "log2_hist_from_arrays", "map_frame", "possible_cpus", "raw_frame", "read_map_fd"]


# --------------------------------------------------------------------------- ordering

# Keys spanning at most this many slots per entry are placed by value instead of sorted.
_DENSE_SPAN = 2


def _sorted_by_key(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys and values in key order (keys unchanged when sorting would not be cheap).

    A hash map hands its entries back in bucket order, a random permutation; reordering a
    1 M-entry map is most of what a frame costs beyond the batch syscalls, so the scalar-key
    paths here touch each value once and build the sorted keys without a random gather.
    """
    if len(keys) < 2:
        return keys, values
    if keys.dtype.names is None:
        if keys.ndim != 1 or keys.dtype.kind not in "iufbS" or np.all(keys[1:] >= keys[:-1]):
            return keys, values
        if keys.dtype.kind in "iu":
            placed = _place_dense(keys, values)
            if placed is not None:
                return placed
            if keys.dtype.itemsize <= 4 and len(keys) < 1 << 32:
                return _packed_sort(keys, values)
        # unstable (much faster) sort: ties only in hand-made arrays, never in a map's keys
        order = np.argsort(keys)
    else:
        order = _lexsort_fields(keys)
        if order is None:
            return keys, values
    return keys[order], np.take(values, order, axis=0)


def _lexsort_fields(keys: np.ndarray) -> np.ndarray | None:
    cols = []
    for name in keys.dtype.names:
        if name.startswith(PAD_PREFIX):
            continue
        c = keys[name]
        if c.ndim != 1 or c.dtype.names is not None or c.dtype.kind not in "iufbS":
            return None
        if (c.dtype.metadata or {}).get(BITS_KEY):
            c = extract_bits(c, *c.dtype.metadata[BITS_KEY])
        cols.append(c)
    if not cols:
        return None
    return np.lexsort(cols[::-1])


def _place_dense(keys: np.ndarray, values: np.ndarray):
    """Sorted by writing each value at its key's slot, when the keys are unique and span few slots.

    Counters keyed by CPU, pid, slot or index are dense: one scatter replaces a sort and two
    gathers, and the sorted keys are a range.
    """
    lo, hi = int(keys.min()), int(keys.max())
    span = hi - lo + 1
    if span > _DENSE_SPAN * len(keys):
        return None
    pos = _offsets(keys, lo).astype(np.intp)
    present = np.zeros(span, dtype=bool)
    present[pos] = True
    if np.count_nonzero(present) != len(keys):  # repeated keys: only hand-made arrays have them
        return None
    out = np.empty((span, *values.shape[1:]), values.dtype)
    out[pos] = values
    if span == len(keys):
        return _from_offsets(np.arange(span, dtype=f"u{keys.dtype.itemsize}"), lo, keys.dtype), out
    return _from_offsets(np.flatnonzero(present), lo, keys.dtype), out[present]


def _packed_sort(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys of up to 32 bits sorted as (key - min << 32 | index) in one u64 sort.

    numpy's SIMD sort of plain integers is several times faster than its argsort, the sorted
    keys come out of the high halves without a gather, and repeated keys keep their order.
    """
    lo = int(np.iinfo(keys.dtype).min)
    packed = _offsets(keys, lo).astype(np.uint64)
    packed <<= np.uint64(32)
    packed |= np.arange(len(keys), dtype=np.uint64)
    packed.sort()
    order = (packed & np.uint64(0xFFFFFFFF)).view(np.intp)  # a fresh array: viewing it copies nothing
    packed >>= np.uint64(32)
    return _from_offsets(packed, lo, keys.dtype), np.take(values, order, axis=0)


def _offsets(keys: np.ndarray, lo: int) -> np.ndarray:
    """keys - lo as unsigned integers of the keys' width: exact (no overflow) for keys >= lo of any
    integer kind, since the difference fits the width and unsigned arithmetic wraps."""
    udt = np.dtype(f"u{keys.dtype.itemsize}")
    return keys.view(udt) - udt.type(lo % (1 << (8 * udt.itemsize)))


def _from_offsets(offsets: np.ndarray, lo: int, dtype: np.dtype) -> np.ndarray:
    """lo + offsets as ``dtype``, the inverse of ``_offsets``; may reuse ``offsets``, a scratch array."""
    udt = np.dtype(f"u{dtype.itemsize}")
    out = offsets.astype(udt, copy=False)
    out += udt.type(lo % (1 << (8 * udt.itemsize)))
    return out.view(dtype)


# --------------------------------------------------------------------------- frames

def raw_frame(raw: RawMap) -> pd.DataFrame:
    """The DataFrame of a map read by ``read_map_fd`` (or ``maps.read_table``)."""
    df = frame_from_arrays(raw.keys, raw.values, cpus=raw.cpus)
    if raw.name:
        df.attrs["map"] = raw.name
    if raw.map_type is not None:
        df.attrs["map_type"] = MapType.label(raw.map_type)
    return df



def frame_from_arrays(keys, values, cpus=None, sort: bool = True) -> pd.DataFrame:
    """The DataFrame ``map_frame`` builds, from key and value arrays already in memory.

    ``keys`` and ``values`` are (structured) numpy arrays with one entry per
    map element, e.g. ``np.frombuffer(raw, dtype_of(table.Key))``. For a
    per-CPU map pass ``values`` with a CPU axis, shape ``(n, len(cpus))``, and
    the CPU ids in ``cpus``. Key columns come first, then ``cpu``, then value
    columns; a key field and a value field with the same name become
    ``key.<name>`` and ``value.<name>``.
    """
    keys, values = np.asarray(keys), np.asarray(values)
    if sort:
        keys, values = _sorted_by_key(keys, values)
    kcols = flatten(keys, "key")
    ncpu = 0
    if cpus is not None:
        ncpu = len(cpus)
        # one row per (key, cpu); a sub-array value keeps its own trailing axes
        values = values.reshape((-1, *values.shape[2:]))
        kcols = {name: np.repeat(col, ncpu) for name, col in kcols.items()}
    vcols = flatten(values, "value")
    clash = kcols.keys() & vcols.keys()
    cols: dict[str, object] = {}
    for name, col in kcols.items():
        cols[f"key.{name}" if name in clash else name] = col
    if cpus is not None:
        cpu_name = "cpu" if "cpu" not in cols and "cpu" not in vcols else "cpu_id"
        cols[cpu_name] = np.tile(np.asarray(cpus, dtype=np.int32), len(keys))
    for name, col in vcols.items():
        cols[f"value.{name}" if name in clash else name] = col
    # The columns are fresh arrays already: no second copy into pandas' blocks.
    return pd.DataFrame(cols, copy=False)


def map_frame(table) -> pd.DataFrame:
    """A BCC table (hash, array, LRU, per-CPU, ...) as a DataFrame.

    Key columns come first, then value columns (see ``flatten`` for naming;
    clashing names get ``key.``/``value.`` prefixes). Per-CPU maps are in
    long format: one row per key and *possible* CPU, with a ``cpu`` column
    between the key and value columns; total them with
    ``df.groupby("key")["value"].sum()``. Array maps list every index, zeros
    included. Rows are sorted by key when the key is a scalar or a struct of
    scalar fields. ``attrs`` holds the map's ``map`` name and ``map_type``.

    The whole map is read with one ``BPF_MAP_LOOKUP_BATCH`` syscall where the
    kernel supports it for the map type (else key by key), so it is one pass
    but not an atomic snapshot: programs may update entries meanwhile.
    """
    return raw_frame(read_table(table))
