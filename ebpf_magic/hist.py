"""Power-of-two histograms (``bpf_log2l()`` slots) as DataFrames that plot themselves."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .dtypes import flatten
from .errors import MapError
from .maps import read_table


def _slot_bounds(slots) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive [low, high] of bpf_log2l() slots: slot 0 holds 0, slot k>=1 holds 2^(k-1) .. 2^k - 1."""
    s = np.asarray(slots, dtype=np.uint64)
    one = np.uint64(1)
    low = np.where(s == 0, np.uint64(0), one << (np.maximum(s, one) - one))
    # slot 64 would need 1 << 64, which wraps in uint64; its high is the type's maximum
    high = np.where(s >= 64, np.uint64(2**64 - 1), (one << np.minimum(s, np.uint64(63))) - one)
    return low, high


class Log2Hist(pd.DataFrame):
    """A power-of-two histogram: one row per slot with ``low``, ``high``, ``count``.

    Built by ``log2_hist``. The index is the slot number; ``low``/``high`` are
    the inclusive value bounds of the slot; ``attrs["unit"]`` names what was
    measured, when known. A histogram of several groups has a ``bucket``
    column first. Any pandas operation on it returns a plain DataFrame, so
    ``plot`` is then pandas' own again.
    """

    @property
    def _constructor(self):
        return pd.DataFrame

    def plot(self, ax=None, title=None):
        """Bar chart, one bar per slot labelled with its value range; returns the Axes."""
        import matplotlib.pyplot as plt

        grouped = "bucket" in self.columns
        if grouped:
            counts = pd.DataFrame(self).pivot_table(index=["low", "high"], columns="bucket", values="count",
                                                    aggfunc="sum", sort=True).fillna(0)
            bounds = counts.index.tolist()
        else:
            bounds = list(zip(self["low"], self["high"], strict=True))
        if ax is None:
            _, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(bounds)), 3.5))
        x = np.arange(len(bounds))
        if not bounds:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
        elif grouped:
            width = 0.8 / counts.shape[1]
            for i, bucket in enumerate(counts.columns):
                ax.bar(x + (i - (counts.shape[1] - 1) / 2) * width, counts[bucket].to_numpy(np.float64),
                       width, label=str(bucket))
            ax.legend(title="bucket", fontsize="small")
        else:
            ax.bar(x, self["count"].to_numpy(np.float64), 0.8)
        if bounds:
            ax.set_xticks(x, [_range_label(lo, hi) for lo, hi in bounds], rotation=45, ha="right")
        unit = self.attrs.get("unit")
        ax.set_xlabel(f"value range ({unit})" if unit else "value range")
        ax.set_ylabel("count")
        if title:
            ax.set_title(title)
        ax.figure.tight_layout()
        return ax


_SUFFIXES = ("", "K", "M", "G", "T", "P", "E")


def _human(v) -> str:
    """Compact binary-prefixed number: slot bounds are 2^k or 2^k - 1, both shown as the power."""
    v = int(v)
    if v < 1024:
        return str(v)
    p = min(len(_SUFFIXES) - 1, (v.bit_length() - 1) // 10)
    r = round(v / (1 << (10 * p)))
    if r >= 1024 and p + 1 < len(_SUFFIXES):
        p += 1
        r = round(v / (1 << (10 * p)))
    return f"{r}{_SUFFIXES[p]}"


def _range_label(lo, hi) -> str:
    lo, hi = int(lo), int(hi)
    return _human(lo) if lo == hi else f"{_human(lo)}-{_human(hi)}"


def _dense_hist(slots: np.ndarray, counts: np.ndarray, top: int) -> pd.DataFrame:
    """Rows for slots 0..top, zeros included, duplicate slots summed."""
    dense = np.zeros(top + 1, dtype=np.uint64)
    np.add.at(dense, slots, counts)
    s = np.arange(top + 1, dtype=np.int64)
    low, high = _slot_bounds(s)
    return pd.DataFrame({"low": low, "high": high, "count": dense}, index=pd.Index(s, name="slot"))


def log2_hist_from_arrays(slots, counts, buckets=None, unit: str | None = None) -> Log2Hist:
    """The histogram logic of ``log2_hist`` on plain arrays: a slot and a count per map entry.

    Rows run from slot 0 to the highest slot with a non-zero count. With
    ``buckets`` (one label per entry) every bucket gets that same range, taken
    over all buckets, so groups line up when compared or pivoted.
    """
    slots = np.asarray(slots, dtype=np.int64).reshape(-1)
    counts = np.asarray(counts, dtype=np.uint64).reshape(-1)
    # slots outside 0..64 cannot come from bpf_log2l(); ignore rather than invent bounds
    keep = (counts > 0) & (slots >= 0) & (slots <= 64)
    top = int(slots[keep].max()) if keep.any() else -1
    if buckets is None:
        frame = _dense_hist(slots[keep], counts[keep], top)
    else:
        labels = np.empty(len(slots), dtype=object)
        for i, label in enumerate(buckets):
            labels[i] = label
        parts = []
        for label in _sorted_unique(labels[keep]):
            mask = keep & np.fromiter((lb == label for lb in labels), bool, len(labels))
            part = _dense_hist(slots[mask], counts[mask], top)
            part.insert(0, "bucket", [label] * len(part))
            parts.append(part)
        if parts:
            frame = pd.concat(parts)
        else:
            frame = _dense_hist(slots[:0], counts[:0], -1)
            frame.insert(0, "bucket", np.array([], dtype=object))
    hist = Log2Hist(frame)
    if unit:
        hist.attrs["unit"] = unit
    return hist


def _sorted_unique(labels) -> list:
    uniq = list(dict.fromkeys(labels.tolist()))
    try:
        return sorted(uniq)
    except TypeError:
        return uniq


def log2_hist(table, unit: str | None = None) -> Log2Hist:
    """A BCC log2 histogram (``BPF_HISTOGRAM(dist)`` filled with ``dist.increment(bpf_log2l(v))``).

    The key is the slot: an integer, or a struct with a ``slot`` field whose
    other fields label groups (``BPF_HISTOGRAM(dist, struct { char disk[32];
    u64 slot; })``); those become a ``bucket`` column (the field's value, or a
    tuple of values for several fields). Per-CPU histograms are summed over
    CPUs. ``unit`` (e.g. ``"usecs"``) is kept in ``attrs["unit"]`` and shown
    on the plot.
    """
    raw = read_table(table)
    where = raw.name
    values = raw.values
    if values.dtype.names is not None or values.dtype.kind not in "iu" or values.ndim > (2 if raw.cpus else 1):
        raise MapError("a log2 histogram needs integer counts as values",
                       where=where, hint="declare it as BPF_HISTOGRAM(name) or BPF_HISTOGRAM(name, key_t) "
                       "and use map_frame() for other maps")
    counts = values.astype(np.uint64)
    if raw.cpus is not None:
        counts = counts.sum(axis=1)
    keys = raw.keys
    if keys.dtype.names is None:
        if keys.dtype.kind not in "iu" or keys.ndim != 1:
            raise MapError("histogram keys must be integer slots", where=where,
                           hint="fill it with dist.increment(bpf_log2l(value))")
        return log2_hist_from_arrays(keys, counts, unit=unit)
    cols = flatten(keys, "key")
    if "slot" not in cols:
        raise MapError(f"the histogram key struct has no 'slot' field (fields: {', '.join(cols)})",
                       where=where,
                       hint="name the bpf_log2l() member 'slot', e.g. struct key { u32 pid; u64 slot; }, "
                       "or read the raw map with map_frame(table)")
    slots = np.asarray(cols.pop("slot"))
    if slots.dtype.kind not in "iu":
        raise MapError("the histogram key's 'slot' field must be an integer", where=where)
    if not cols:
        return log2_hist_from_arrays(slots, counts, unit=unit)
    if len(cols) == 1:
        buckets = list(next(iter(cols.values())))
    else:
        buckets = list(zip(*(list(c) for c in cols.values()), strict=True))
    return log2_hist_from_arrays(slots, counts, buckets=buckets, unit=unit)
