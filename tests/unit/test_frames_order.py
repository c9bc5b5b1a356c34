"""frame_from_arrays' key order: dense keys placed by value, 32-bit keys by a packed sort, the rest
by argsort/lexsort; all must give the order (and dtypes) a stable argsort gives. Pure logic, no kernel."""
from __future__ import annotations

import numpy as np
import pytest

from ebpf_magic.frames import frame_from_arrays

INT_DTYPES = ["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8"]
VALUE = np.dtype({"names": ["a", "b"], "formats": ["u8", "i4"], "offsets": [0, 8], "itemsize": 16})


def _keys(dt: str, layout: str, n: int, rng) -> np.ndarray:
    info = np.iinfo(dt)
    lo_min, hi_max = max(int(info.min), -(2**62)), min(int(info.max), 2**62)
    if layout == "dense":  # every key of a range: placed by value
        lo = int(rng.integers(lo_min, hi_max - n))
        return rng.permutation(np.arange(lo, lo + n, dtype=np.int64)).astype(dt)
    if layout == "gappy":  # half the slots of a range used
        lo = int(rng.integers(lo_min, hi_max - 2 * n))
        return rng.choice(np.arange(lo, lo + 2 * n, dtype=np.int64), n, replace=False).astype(dt)
    if layout == "sparse":
        return rng.choice(hi_max, n, replace=False).astype(dt)
    if layout == "extremes":
        return np.array([info.max, info.min, info.max - 1, info.min + 1], dtype=dt)
    return rng.integers(0, n // 2, n).astype(dt)  # repeated keys (hand-made arrays only)


@pytest.mark.parametrize("dt", INT_DTYPES)
@pytest.mark.parametrize("layout", ["dense", "gappy", "sparse", "extremes", "repeated"])
def test_integer_keys_sorted_with_their_values(dt, layout):
    rng = np.random.default_rng(INT_DTYPES.index(dt))
    n = 40 if dt in ("i1", "u1") else 1000
    keys = _keys(dt, layout, n, rng)
    values = np.zeros(len(keys), VALUE)
    values["a"] = np.arange(len(keys))
    values["b"] = -np.arange(len(keys))
    df = frame_from_arrays(keys, values)
    order = np.argsort(keys, kind="stable")
    assert df["key"].dtype == np.dtype(dt)
    assert df["key"].to_numpy().tolist() == keys[order].tolist()
    if layout == "repeated" and np.dtype(dt).itemsize == 8:
        # 64-bit keys use an unstable sort: equal keys may swap, but no row is lost or changed
        got = zip(df["key"], df["a"], df["b"], strict=True)
        assert sorted(got) == sorted(zip(keys.tolist(), range(n), range(0, -n, -1), strict=True))
    else:
        assert df["a"].to_numpy().tolist() == values["a"][order].tolist()
        assert df["b"].to_numpy().tolist() == values["b"][order].tolist()


def test_dense_per_cpu_values_keep_their_cpu_axis():
    keys = np.array([3, 1, 2, 0], dtype=np.uint32)
    values = np.arange(8, dtype=np.uint64).reshape(4, 2)  # 2 CPUs
    df = frame_from_arrays(keys, values, cpus=(0, 1))
    assert df["key"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert df["cpu"].tolist() == [0, 1] * 4
    assert df["value"].tolist() == [6, 7, 2, 3, 4, 5, 0, 1]
