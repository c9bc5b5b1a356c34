"""dtype_of / flatten / frame_from_arrays / Log2Hist on hand-made ctypes types: no kernel, no root."""
from __future__ import annotations

import ctypes as ct

import matplotlib
import numpy as np
import pandas as pd
import pytest

from ebpf_magic.errors import MapError
from ebpf_magic.frames import Log2Hist, dtype_of, flatten, frame_from_arrays, log2_hist, log2_hist_from_arrays

matplotlib.use("Agg")


def as_array(ctype, *objs) -> np.ndarray:
    """What the kernel would hand back: the raw bytes of ctypes objects, viewed with dtype_of."""
    return np.frombuffer(b"".join(bytes(o) for o in objs), dtype=dtype_of(ctype), count=len(objs))


# --------------------------------------------------------------------------- dtype_of

@pytest.mark.parametrize("ctype, expected", [
    (ct.c_uint8, np.uint8), (ct.c_int8, np.int8), (ct.c_uint16, np.uint16), (ct.c_int16, np.int16),
    (ct.c_uint32, np.uint32), (ct.c_int32, np.int32), (ct.c_uint64, np.uint64), (ct.c_int64, np.int64),
    (ct.c_ulonglong, np.uint64), (ct.c_long, np.int64), (ct.c_float, np.float32),
    (ct.c_double, np.float64), (ct.c_bool, np.bool_),
    # BCC uses c_char for both `char` and `s8`: a number, not a one-letter string
    (ct.c_char, np.int8),
    # addresses in another address space: only the number means anything
    (ct.c_void_p, np.uintp), (ct.c_char_p, np.uintp), (ct.POINTER(ct.c_int), np.uintp),
])
def test_scalar_dtypes(ctype, expected):
    dt = dtype_of(ctype)
    assert dt == np.dtype(expected)
    assert dt.itemsize == ct.sizeof(ctype)


def test_array_dtypes():
    assert dtype_of(ct.c_char * 16) == np.dtype("S16")
    assert dtype_of(ct.c_uint32 * 4) == np.dtype(("<u4", (4,)))
    nested = dtype_of((ct.c_int16 * 2) * 3)  # C: short m[3][2]
    assert nested.shape == (3, 2) and nested.base == np.dtype(np.int16)
    assert dtype_of(ct.c_uint64 * 2).itemsize == 16  # BCC's unsigned __int128


class Inner(ct.Structure):
    _fields_ = [("a", ct.c_uint16), ("b", ct.c_uint32)]


class Padded(ct.Structure):
    """Shaped like BCC's decoding of `struct { char c; u64 x; }`: packed, explicit padding."""

    _pack_ = 1
    _fields_ = [("c", ct.c_char), ("__pad_1", ct.c_char * 7), ("x", ct.c_uint64)]


def test_struct_layout_matches_ctypes():
    class Outer(ct.Structure):
        _fields_ = [("pid", ct.c_uint32), ("inner", Inner), ("ts", ct.c_uint64), ("tag", ct.c_uint8)]

    dt = dtype_of(Outer)
    assert dt.itemsize == ct.sizeof(Outer)
    for name in ("pid", "inner", "ts", "tag"):
        assert dt.fields[name][1] == getattr(Outer, name).offset
    assert dt.fields["inner"][0].names == ("a", "b")
    assert dtype_of(Padded).itemsize == 16 and dtype_of(Padded).fields["x"][1] == 8


def test_dtype_of_rejects_non_types():
    with pytest.raises(TypeError):
        dtype_of(ct.c_int(3))


# --------------------------------------------------------------------------- flatten

def test_scalar_array_is_one_column_named_by_prefix():
    arr = as_array(ct.c_uint64, ct.c_uint64(7), ct.c_uint64(9))
    cols = flatten(arr, "value")
    assert list(cols) == ["value"]
    assert cols["value"].tolist() == [7, 9]
    assert list(flatten(arr, "key")) == ["key"]


def test_nested_struct_columns_are_dotted():
    class Outer(ct.Structure):
        _fields_ = [("pid", ct.c_uint32), ("inner", Inner), ("ts", ct.c_uint64)]

    o = Outer(pid=42, inner=Inner(a=3, b=70000), ts=2**40)
    cols = flatten(as_array(Outer, o))
    assert list(cols) == ["pid", "inner.a", "inner.b", "ts"]
    assert (cols["pid"][0], cols["inner.a"][0], cols["inner.b"][0], cols["ts"][0]) == (42, 3, 70000, 2**40)


def test_padding_members_are_dropped():
    cols = flatten(as_array(Padded, Padded(c=b"\x05", x=11)))
    assert list(cols) == ["c", "x"]
    assert cols["c"][0] == 5 and cols["x"][0] == 11


def test_char_arrays_become_nul_trimmed_str():
    class Ev(ct.Structure):
        _fields_ = [("comm", ct.c_char * 16)]

    full, short, garbage, bad = Ev(), Ev(), Ev(), Ev()
    full.comm = b"0123456789abcdef"  # no terminator at all
    short.comm = b"bash"
    ct.memmove(ct.addressof(garbage), b"sh\0stale-bytes", 14)  # bytes after the NUL are junk
    ct.memmove(ct.addressof(bad), b"caf\xff\0", 5)
    col = flatten(as_array(Ev, full, short, garbage, bad, Ev()))["comm"]
    assert list(col) == ["0123456789abcdef", "bash", "sh", "caf\ufffd", ""]
    assert all(type(s) is str for s in col)


def test_fixed_arrays_become_list_columns():
    class Ev(ct.Structure):
        _fields_ = [("args", ct.c_uint64 * 3), ("m", (ct.c_int16 * 2) * 2), ("names", (ct.c_char * 4) * 2)]

    e = Ev()
    e.args[:] = [1, 2, 3]
    e.m[1][0] = -5
    e.names[0].value = b"ab"
    e.names[1].value = b"cdef"
    cols = flatten(as_array(Ev, e, Ev()))
    assert cols["args"][0] == [1, 2, 3] and cols["args"][1] == [0, 0, 0]
    assert cols["m"][0] == [[0, 0], [-5, 0]]
    assert cols["names"][0] == ["ab", "cdef"]


def test_union_and_anonymous_members():
    class Num(ct.Union):
        _fields_ = [("u", ct.c_uint32), ("f", ct.c_float)]

    class Ev(ct.Structure):
        _anonymous_ = ("__anon0",)
        _fields_ = [("kind", ct.c_uint32), ("__anon0", Num), ("named", Num)]

    e = Ev(kind=1)
    e.f = 1.5
    e.named.u = 0x3FC00000  # the bits of 1.5f
    cols = flatten(as_array(Ev, e))
    assert list(cols) == ["kind", "u", "f", "named.u", "named.f"]
    assert cols["f"][0] == 1.5 and cols["u"][0] == 0x3FC00000
    assert cols["named.f"][0] == 1.5


def test_bitfields():
    class Flags(ct.Structure):
        _fields_ = [("a", ct.c_uint32, 3), ("b", ct.c_uint32, 5), ("neg", ct.c_int32, 4), ("x", ct.c_uint64)]

    cols = flatten(as_array(Flags, Flags(a=5, b=17, neg=-3, x=9), Flags(a=7, b=31, neg=7, x=1)))
    assert cols["a"].tolist() == [5, 7]
    assert cols["b"].tolist() == [17, 31]
    assert cols["neg"].tolist() == [-3, 7]
    assert cols["x"].tolist() == [9, 1]


# --------------------------------------------------------------------------- frames from arrays

def test_key_value_name_clash_gets_prefixes():
    class K(ct.Structure):
        _fields_ = [("pid", ct.c_uint32), ("cpu", ct.c_uint32)]

    class V(ct.Structure):
        _fields_ = [("pid", ct.c_uint32), ("count", ct.c_uint64)]

    df = frame_from_arrays(as_array(K, K(2, 0), K(1, 1)), as_array(V, V(20, 5), V(10, 6)))
    assert list(df.columns) == ["key.pid", "cpu", "value.pid", "count"]
    # sorted by key (pid, then cpu)
    assert df["key.pid"].tolist() == [1, 2] and df["count"].tolist() == [6, 5]


def test_scalar_key_and_value_columns_and_sorting():
    keys = np.array([30, 10, 20], dtype=np.uint32)
    vals = np.array([3, 1, 2], dtype=np.uint64)
    df = frame_from_arrays(keys, vals)
    assert list(df.columns) == ["key", "value"]
    assert df["key"].tolist() == [10, 20, 30] and df["value"].tolist() == [1, 2, 3]
    assert frame_from_arrays(keys, vals, sort=False)["key"].tolist() == [30, 10, 20]


def test_per_cpu_long_format():
    keys = np.array([7, 3], dtype=np.uint32)
    vals = np.array([[1, 2], [3, 4]], dtype=np.uint64)  # (key, cpu)
    df = frame_from_arrays(keys, vals, cpus=(0, 1))
    assert list(df.columns) == ["key", "cpu", "value"]
    assert df.values.tolist() == [[3, 0, 3], [3, 1, 4], [7, 0, 1], [7, 1, 2]]
    assert df.groupby("key")["value"].sum().to_dict() == {3: 7, 7: 3}


def test_struct_key_with_char_array_and_string_sort():
    class K(ct.Structure):
        _fields_ = [("comm", ct.c_char * 8), ("pid", ct.c_uint32)]

    df = frame_from_arrays(as_array(K, K(b"zsh", 1), K(b"bash", 9), K(b"bash", 2)),
                           np.array([1, 2, 3], dtype=np.uint64))
    assert df[["comm", "pid", "value"]].values.tolist() == [["bash", 2, 3], ["bash", 9, 2], ["zsh", 1, 1]]


# --------------------------------------------------------------------------- histograms

class FakeHist:
    """Just enough of a BCC table for log2_hist: no fd, so it reads through items()."""

    map_fd = None

    def __init__(self, key_t, entries, leaf_t=ct.c_uint64):
        self.Key, self.Leaf = key_t, leaf_t
        self._entries = entries
        self._name = b"dist"

    def items(self):
        return [(self.Key(*k) if isinstance(k, tuple) else self.Key(k), self.Leaf(v)) for k, v in self._entries]


def test_log2_slot_ranges():
    h = log2_hist_from_arrays(np.arange(65), np.ones(65, dtype=np.uint64))
    assert (h.loc[0, "low"], h.loc[0, "high"]) == (0, 0)
    assert (h.loc[1, "low"], h.loc[1, "high"]) == (1, 1)
    assert (h.loc[2, "low"], h.loc[2, "high"]) == (2, 3)
    assert (h.loc[3, "low"], h.loc[3, "high"]) == (4, 7)
    assert (h.loc[10, "low"], h.loc[10, "high"]) == (512, 1023)
    assert (int(h.loc[64, "low"]), int(h.loc[64, "high"])) == (2**63, 2**64 - 1)
    # contiguous: each slot starts right after the previous one ends
    assert (h["low"].to_numpy()[2:] == h["high"].to_numpy()[1:-1] + 1).all()


def test_log2_zero_fill_up_to_highest_nonempty_slot():
    # a BPF_HISTOGRAM array map has all 64 slots; only 3 and 5 were hit
    counts = np.zeros(64, dtype=np.uint64)
    counts[3], counts[5] = 4, 2
    h = log2_hist(FakeHist(ct.c_int, list(enumerate(counts.tolist()))), unit="usecs")
    assert isinstance(h, Log2Hist)
    assert list(h.columns) == ["low", "high", "count"]
    assert h.index.tolist() == [0, 1, 2, 3, 4, 5]
    assert h["count"].tolist() == [0, 0, 0, 4, 0, 2]
    assert h.attrs["unit"] == "usecs"


def test_log2_empty_and_duplicates():
    assert len(log2_hist_from_arrays([0, 1, 2], [0, 0, 0])) == 0
    h = log2_hist_from_arrays([2, 2, 0], [1, 3, 5])
    assert h["count"].tolist() == [5, 0, 4]


def test_pandas_ops_return_plain_dataframes():
    h = log2_hist_from_arrays([1, 2], [3, 4], unit="ns")
    nonzero = h[h["count"] > 0]
    assert type(nonzero) is pd.DataFrame
    assert type(h.copy()) is pd.DataFrame
    assert type(h.head(1)) is pd.DataFrame
    assert nonzero.attrs.get("unit") == "ns"


def test_struct_key_with_slot_groups_into_buckets():
    class K(ct.Structure):
        _fields_ = [("disk", ct.c_char * 8), ("slot", ct.c_uint64)]

    h = log2_hist(FakeHist(K, [((b"sda", 1), 2), ((b"nvme0", 3), 5), ((b"sda", 2), 1)]))
    assert list(h.columns) == ["bucket", "low", "high", "count"]
    assert h.groupby("bucket").size().to_dict() == {"nvme0": 4, "sda": 4}  # same slot range each
    sda = h[h["bucket"] == "sda"]
    assert sda["count"].tolist() == [0, 2, 1, 0]


def test_struct_key_without_slot_is_a_clear_error():
    class K(ct.Structure):
        _fields_ = [("pid", ct.c_uint32), ("bucket_nr", ct.c_uint32)]

    with pytest.raises(MapError) as err:
        log2_hist(FakeHist(K, [((1, 2), 3)]))
    assert "slot" in str(err.value) and "map_frame" in str(err.value)


def test_plot_returns_axes_with_range_labels():
    h = log2_hist_from_arrays([0, 1, 2, 11, 21], [1, 2, 3, 4, 5], unit="usecs")
    ax = h.plot(title="latency")
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:4] == ["0", "1", "2-3", "4-7"]
    assert labels[11] == "1K-2K" and labels[21] == "1M-2M"
    assert len(ax.patches) == 22
    assert ax.get_title() == "latency" and "usecs" in ax.get_xlabel()
    import matplotlib.pyplot as plt

    plt.close(ax.figure)


def test_plot_bucketed_and_empty():
    import matplotlib.pyplot as plt

    h = log2_hist_from_arrays([1, 2, 2], [1, 2, 3], buckets=["a", "a", "b"])
    ax = h.plot()
    assert len(ax.patches) == 2 * 3  # two buckets x slots 0..2
    plt.close(ax.figure)
    fig, ax2 = plt.subplots()
    assert log2_hist_from_arrays([], []).plot(ax=ax2) is ax2
    plt.close(fig)
