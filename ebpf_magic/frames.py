"""BPF maps as pandas DataFrames.

Three layers, each usable on its own:

* ``dtype_of`` maps a ctypes type (what BCC builds from a map's key/leaf
  description) to a numpy dtype with the same memory layout, so raw bytes
  from the kernel can be viewed without a per-element Python loop.
* ``flatten`` turns a structured numpy array into named columns.
* ``map_frame`` / ``log2_hist`` read a whole map with one batch syscall and
  build the frame.

Nothing here imports BCC or IPython: a "table" is anything with ``Key``,
``Leaf`` and ``map_fd`` (BCC's table objects qualify).
"""
from __future__ import annotations

import ctypes as ct
import dataclasses
import errno
import functools

import numpy as np
import pandas as pd

from . import libbpf
from .errors import MapError

# Kernel map type ids (uapi/linux/bpf.h) that change how a map is read.
_PERCPU_HASH, _PERCPU_ARRAY, _LRU_PERCPU_HASH = 5, 6, 10
_PERF_EVENT_ARRAY, _QUEUE, _STACK, _RINGBUF = 4, 22, 23, 27
_PERCPU_TYPES = {_PERCPU_HASH, _PERCPU_ARRAY, _LRU_PERCPU_HASH}
_TYPE_NAMES = {
    1: "hash", 2: "array", 3: "prog_array", 4: "perf_event_array", 5: "percpu_hash",
    6: "percpu_array", 7: "stack_trace", 8: "cgroup_array", 9: "lru_hash", 10: "lru_percpu_hash",
    11: "lpm_trie", 12: "array_of_maps", 13: "hash_of_maps", 22: "queue", 23: "stack", 27: "ringbuf",
}

# ENOTSUPP is kernel-internal (524) but leaks to user space from the bpf syscall
# when a map type has no batch ops.
_ENOTSUPP = 524
_NO_BATCH = {errno.EINVAL, _ENOTSUPP, errno.EOPNOTSUPP}

# BCC inserts explicit padding members so its packed ctypes mirror the C layout;
# they carry no information and would only clutter the frame.
_PAD_PREFIX = "__pad_"

# Bounds the first buffer allocation for huge, mostly empty maps; the reader
# grows it if the map really holds more.
_FIRST_READ_BYTES = 64 << 20


# --------------------------------------------------------------------------- dtypes

_BITS_KEY = "ebpf_magic.bits"


def dtype_of(ctype) -> np.dtype:
    """The numpy dtype whose memory layout matches the ctypes type ``ctype``.

    * integer/float/bool scalars map to the numpy scalar of the same size;
      a lone ``c_char`` becomes ``int8`` (BCC uses it for ``char`` *and* ``s8``,
      which are numbers far more often than one-letter strings);
    * pointers (``c_void_p``, ``c_char_p``, ``POINTER(...)``) become ``uint64``:
      they point into kernel or another process's memory, so only the address
      is meaningful here;
    * ``c_char * N`` becomes ``SN`` (``flatten`` decodes it to ``str``);
      other arrays become numpy sub-arrays (nested arrays merge their shapes);
    * Structures and Unions become structured dtypes with the ctypes offsets
      and total size, so BCC's packed structs with ``__pad_N`` members, nested
      structs and overlapping union members all line up. Anonymous members are
      inlined. Bit fields are kept as their storage unit tagged with metadata
      that ``flatten`` uses to extract the bits.
    """
    if isinstance(ctype, np.dtype):
        return ctype
    if not isinstance(ctype, type):
        raise TypeError(f"dtype_of expects a ctypes type, got {ctype!r}")
    if issubclass(ctype, (ct.Structure, ct.Union)):
        return _record_dtype(ctype)
    if issubclass(ctype, ct.Array):
        elem = ctype._type_
        if elem is ct.c_char:
            return np.dtype(f"S{ctype._length_}")
        sub = dtype_of(elem)
        if sub.subdtype is not None:  # int m[3][2]: one (3, 2) sub-array, not arrays of arrays
            base, shape = sub.subdtype
            return np.dtype((base, (ctype._length_, *shape)))
        return np.dtype((sub, (ctype._length_,)))
    if issubclass(ctype, ct._Pointer):
        return np.dtype(np.uintp)
    if issubclass(ctype, ct._SimpleCData):
        return _scalar_dtype(ctype)
    raise TypeError(f"dtype_of: no numpy layout for ctypes type {ctype.__name__}")


def _scalar_dtype(ctype) -> np.dtype:
    code = ctype._type_
    size = ct.sizeof(ctype)
    if code in ("P", "z", "Z"):
        dt = np.dtype(np.uintp)
    elif code == "c":
        dt = np.dtype(np.int8)
    elif code == "u":
        dt = np.dtype(f"U{size // 4}") if size % 4 == 0 else np.dtype(f"u{size}")
    else:
        dt = np.dtype(code)
    if dt.itemsize != size:
        # e.g. long double where numpy's longdouble differs: keep the layout
        # right even if the values become opaque bytes.
        dt = np.dtype(f"V{size}")
    return dt


def _bitfield_geometry(descr) -> tuple[int, int]:
    """(bit offset, bit width) of a ctypes bit-field descriptor."""
    width = getattr(descr, "bit_size", None)
    if width is not None:  # Python >= 3.14 exposes them directly
        return descr.bit_offset, width
    return descr.size & 0xFFFF, descr.size >> 16


def _record_dtype(ctype) -> np.dtype:
    names: list[str] = []
    formats: list[np.dtype] = []
    offsets: list[int] = []
    anonymous = set(getattr(ctype, "_anonymous_", ()))
    for field in ctype._fields_:
        name, ftype = field[0], field[1]
        descr = getattr(ctype, name)
        if len(field) == 3:
            shift, width = _bitfield_geometry(descr)
            storage = _scalar_dtype(ftype)
            signed = storage.kind == "i"
            formats.append(np.dtype(storage, metadata={_BITS_KEY: (shift, width, signed)}))
            names.append(name)
            offsets.append(descr.offset)
            continue
        sub = dtype_of(ftype)
        if name in anonymous and sub.names:
            for sname in sub.names:
                sdt, soff = sub.fields[sname][:2]
                names.append(sname)
                formats.append(sdt)
                offsets.append(descr.offset + soff)
            continue
        names.append(name)
        formats.append(sub)
        offsets.append(descr.offset)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": ct.sizeof(ctype)})


# --------------------------------------------------------------------------- columns

def flatten(arr, prefix: str = "value") -> dict[str, object]:
    """Named columns for a (structured) numpy array.

    A scalar array is one column called ``prefix``. Struct fields become one
    column each, named after the field; nested structs are named
    ``outer.inner``. ``c_char`` arrays become ``str`` (cut at the first NUL,
    undecodable bytes replaced); bit fields become integers; other fixed-size
    arrays become one column whose cells are Python lists. BCC's ``__pad_N``
    members are dropped.
    """
    arr = np.asarray(arr)
    out: dict[str, object] = {}
    if arr.dtype.names is None:
        out[prefix] = _column(arr)
    else:
        _flatten_into(arr, "", out)
    return out


def _flatten_into(arr: np.ndarray, path: str, out: dict) -> None:
    for name in arr.dtype.names:
        if name.startswith(_PAD_PREFIX):
            continue
        sub = arr[name]
        if sub.dtype.names is not None and sub.ndim == arr.ndim:
            _flatten_into(sub, f"{path}{name}.", out)
        else:
            out[f"{path}{name}"] = _column(sub)


def _column(a: np.ndarray):
    bits = (a.dtype.metadata or {}).get(_BITS_KEY)
    if bits is not None:
        return _extract_bits(a, *bits)
    if a.ndim > 1:
        if a.dtype.kind == "S":
            a = _decode_chars(a.reshape(-1)).reshape(a.shape)
        return _rows_as_lists(a)
    if a.dtype.kind == "S":
        return _decode_chars(a)
    return a


def _rows_as_lists(a: np.ndarray) -> np.ndarray:
    # Filled one by one: assigning a list of equal-length lists would make numpy
    # broadcast it back into a 2-D array instead of list-valued cells.
    col = np.empty(len(a), dtype=object)
    for i, row in enumerate(a.tolist()):
        col[i] = row
    return col


def _decode_chars(a: np.ndarray) -> np.ndarray:
    """NUL-trimmed, UTF-8 decoded strings from an ``S`` array, vectorised."""
    n = a.dtype.itemsize
    if n == 0 or a.size == 0:
        return np.array([""] * a.size, dtype=object)
    raw = np.ascontiguousarray(a).view(np.uint8).reshape(-1, n)
    after_nul = np.cumsum(raw == 0, axis=1, dtype=np.int32) > 0
    if after_nul.any():
        # bytes after the terminator are stale buffer contents, not part of the string
        raw = np.where(after_nul, np.uint8(0), raw)
    trimmed = raw.reshape(-1).view(f"S{n}")
    return np.char.decode(trimmed, "utf-8", "replace").astype(object)


def _extract_bits(a: np.ndarray, shift: int, width: int, signed: bool) -> np.ndarray:
    u = a.astype(f"u{a.dtype.itemsize}").astype(np.uint64)
    mask = np.uint64((1 << width) - 1)
    v = (u >> np.uint64(shift)) & mask
    size = max(1, -(-width // 8))
    size = 1 << (size - 1).bit_length()  # round to a numpy integer size
    if not signed:
        return v.astype(f"u{size}")
    sign = np.uint64(1 << (width - 1))
    return ((v ^ sign).astype(np.int64) - np.int64(1 << (width - 1))).astype(f"i{size}")


# --------------------------------------------------------------------------- reading maps

class _MapInfoHead(ct.Structure):
    """The leading, stable part of struct bpf_map_info (the kernel accepts a short info_len)."""

    _fields_ = [("type", ct.c_uint32), ("id", ct.c_uint32), ("key_size", ct.c_uint32),
                ("value_size", ct.c_uint32), ("max_entries", ct.c_uint32),
                ("map_flags", ct.c_uint32), ("name", ct.c_char * 16)]


def _map_info(fd: int) -> _MapInfoHead:
    info = _MapInfoHead()
    size = ct.c_uint32(ct.sizeof(info))
    ret = libbpf.lib().bpf_obj_get_info_by_fd(fd, ct.byref(info), ct.byref(size))
    if ret != 0:
        err = libbpf.errno_of(ret)
        raise MapError(f"cannot query map fd {fd}: {libbpf.strerror(err)}",
                       hint="the BPF program may have been unloaded (bpf.cleanup()); run the cell again")
    return info


def _cpu_list(path: str) -> list[int]:
    cpus: list[int] = []
    with open(path) as f:
        for part in f.read().strip().split(","):
            lo, _, hi = part.partition("-")
            cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


@functools.lru_cache(maxsize=1)
def possible_cpus() -> tuple[int, ...]:
    """The CPUs the kernel sizes per-CPU map values for (possible, not just online)."""
    return tuple(_cpu_list("/sys/devices/system/cpu/possible"))


@dataclasses.dataclass
class _Raw:
    """A map's contents as numpy arrays; ``values`` has a CPU axis (axis 1) for per-CPU maps."""

    keys: np.ndarray
    values: np.ndarray
    map_type: int | None
    name: str | None
    cpus: tuple[int, ...] | None


def _table_name(table) -> str | None:
    name = getattr(table, "_name", None) or getattr(table, "name", None)
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    return name if isinstance(name, str) else None


def _leaf_type(table, value_size: int, percpu: bool, name: str | None):
    """The ctypes type of ONE value (BCC replaces ``Leaf`` by a per-CPU array for per-CPU maps)."""
    for cand in (getattr(table, "sLeaf", None), table.Leaf):
        if cand is not None and ct.sizeof(cand) == value_size:
            return cand
    leaf = table.Leaf
    if percpu and issubclass(leaf, ct.Array) and ct.sizeof(leaf._type_) == value_size:
        return leaf._type_
    raise MapError(f"value type {leaf.__name__} is {ct.sizeof(leaf)} bytes but the kernel map "
                   f"stores {value_size}-byte values",
                   where=name, hint="pass the right leaftype to bpf.get_table()")


def _read(table) -> _Raw:
    fd = getattr(table, "map_fd", None)
    if not isinstance(fd, int) or fd < 0:
        return _read_items(table)
    info = _map_info(fd)
    name = _table_name(table) or info.name.decode(errors="replace")
    _check_key_value_map(info, name)
    percpu = info.type in _PERCPU_TYPES
    key_t = table.Key
    if ct.sizeof(key_t) != info.key_size:
        raise MapError(f"key type {key_t.__name__} is {ct.sizeof(key_t)} bytes but the kernel map "
                       f"uses {info.key_size}-byte keys", where=name,
                       hint="pass the right keytype to bpf.get_table()")
    leaf_t = _leaf_type(table, info.value_size, percpu, name)
    return read_map_fd(fd, dtype_of(key_t), dtype_of(leaf_t), name, info)


def _check_key_value_map(info, name: str) -> None:
    if info.type in (_PERF_EVENT_ARRAY, _RINGBUF, _QUEUE, _STACK):
        raise MapError(f"'{name}' is a {_TYPE_NAMES.get(info.type)} map, not a key/value map",
                       hint="read its records with h.events(name)"
                       if info.type in (_PERF_EVENT_ARRAY, _RINGBUF) else None)


def read_map_fd(fd: int, kdt: np.dtype, vdt: np.dtype, name: str | None = None, info=None) -> _Raw:
    """A whole map read through its fd into arrays of the given key and value dtypes.

    Engine-neutral: BCC cells give dtypes from ctypes, CO-RE cells from BTF.
    """
    info = info or _map_info(fd)
    name = name or info.name.decode(errors="replace")
    _check_key_value_map(info, name)
    percpu = info.type in _PERCPU_TYPES
    cpus = possible_cpus() if percpu else None
    # Per-CPU values come back as one 8-byte aligned slot per possible CPU.
    slot = (info.value_size + 7) & ~7 if percpu else info.value_size
    stride = slot * len(cpus) if percpu else slot
    got = _batch_lookup(fd, info.key_size, stride, info.max_entries)
    if got is None:
        got = _iterate(fd, info.key_size, stride)
    kbuf, vbuf, n = got
    keys = np.frombuffer(kbuf, dtype=kdt, count=n)
    if percpu:
        values = np.ndarray(shape=(n, len(cpus)), dtype=vdt, buffer=vbuf, strides=(stride, slot))
    else:
        values = np.frombuffer(vbuf, dtype=vdt, count=n)
    return _Raw(keys, values, info.type, name, cpus)


def raw_frame(raw: _Raw) -> pd.DataFrame:
    """The DataFrame of a map read by ``read_map_fd`` (or ``_read``)."""
    df = frame_from_arrays(raw.keys, raw.values, cpus=raw.cpus)
    if raw.name:
        df.attrs["map"] = raw.name
    if raw.map_type is not None:
        df.attrs["map_type"] = _TYPE_NAMES.get(raw.map_type, str(raw.map_type))
    return df


def _batch_lookup(fd: int, key_size: int, value_size: int, max_entries: int):
    """All entries via BPF_MAP_LOOKUP_BATCH into numpy buffers, or None if the map lacks batch ops."""
    lib = libbpf.lib()
    # One spare slot lets a full map finish with ENOENT in the first call
    # instead of a second call into a grown buffer.
    cap = max(1, min(max_entries + 1, _FIRST_READ_BYTES // max(1, key_size + value_size)))
    kbuf = np.empty(cap * key_size, np.uint8)
    vbuf = np.empty(cap * value_size, np.uint8)
    # Hash maps use a u32 bucket cursor, array-like maps a key: size for both.
    tok_size = max(key_size, 8)
    in_tok, out_tok = (ct.c_uint8 * tok_size)(), (ct.c_uint8 * tok_size)()
    total, first = 0, True
    while True:
        count = ct.c_uint32(cap - total)
        ret = lib.bpf_map_lookup_batch(fd, None if first else ct.addressof(in_tok), ct.addressof(out_tok),
                                       kbuf.ctypes.data + total * key_size,
                                       vbuf.ctypes.data + total * value_size, ct.byref(count), None)
        err = libbpf.errno_of(ret) if ret != 0 else 0
        if err in (0, errno.ENOENT):  # on other errors count is not written back
            total += count.value
        if err == errno.ENOENT:
            break
        if err in _NO_BATCH and first and total == 0:
            return None
        if err and err != errno.ENOSPC:
            raise MapError(f"batch lookup failed: {libbpf.strerror(err)}")
        if err == errno.ENOSPC or total == cap:
            # A hash bucket did not fit, or the map grew under us: make room and go on.
            cap *= 2
            kbuf = _grow(kbuf, cap * key_size)
            vbuf = _grow(vbuf, cap * value_size)
        if err != errno.ENOSPC:
            ct.memmove(in_tok, out_tok, tok_size)
            first = False
    return kbuf, vbuf, total


def _grow(buf: np.ndarray, size: int) -> np.ndarray:
    bigger = np.empty(size, np.uint8)
    bigger[:len(buf)] = buf
    return bigger


def _iterate(fd: int, key_size: int, value_size: int):
    """Key-by-key read for maps without batch ops (LPM tries, stack traces, old kernels)."""
    lib = libbpf.lib()
    keys, values = bytearray(), bytearray()
    cur, nxt = ct.create_string_buffer(key_size), ct.create_string_buffer(key_size)
    val = ct.create_string_buffer(value_size)
    prev = None
    n = 0
    while lib.bpf_map_get_next_key(fd, prev, nxt) == 0:
        if lib.bpf_map_lookup_elem(fd, nxt, val) == 0:  # else deleted meanwhile
            keys += nxt.raw
            values += val.raw
            n += 1
        ct.memmove(cur, nxt, key_size)
        prev = cur
    return np.frombuffer(bytes(keys), np.uint8), np.frombuffer(bytes(values), np.uint8), n


def _read_items(table) -> _Raw:
    """For table-like objects without a kernel fd: whatever ``items()`` yields."""
    kdt, vdt = dtype_of(table.Key), dtype_of(table.Leaf)
    pairs = list(table.items())
    kraw = b"".join(bytes(k) for k, _ in pairs)
    vraw = b"".join(bytes(v) for _, v in pairs)
    keys = np.frombuffer(kraw, dtype=kdt, count=len(pairs))
    values = np.frombuffer(vraw, dtype=vdt, count=len(pairs))
    return _Raw(keys, values, None, _table_name(table), None)


# --------------------------------------------------------------------------- ordering

def _sort_order(keys: np.ndarray) -> np.ndarray | None:
    """A sort permutation by key, or None when already sorted or when sorting would not be cheap."""
    if len(keys) < 2:
        return None
    if keys.dtype.names is None:
        if keys.ndim != 1 or keys.dtype.kind not in "iufbS":
            return None
        if np.all(keys[1:] >= keys[:-1]):
            return None
        # map keys are unique, so an unstable (much faster) sort gives the same order
        return np.argsort(keys)
    cols = []
    for name in keys.dtype.names:
        if name.startswith(_PAD_PREFIX):
            continue
        c = keys[name]
        if c.ndim != 1 or c.dtype.names is not None or c.dtype.kind not in "iufbS":
            return None
        if (c.dtype.metadata or {}).get(_BITS_KEY):
            c = _extract_bits(c, *c.dtype.metadata[_BITS_KEY])
        cols.append(c)
    if not cols:
        return None
    return np.lexsort(cols[::-1])


# --------------------------------------------------------------------------- frames

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
        order = _sort_order(keys)
        if order is not None:
            keys, values = keys[order], values[order]
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
    return pd.DataFrame(cols)


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
    return raw_frame(_read(table))


# --------------------------------------------------------------------------- histograms

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
    raw = _read(table)
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
