"""Whole BPF maps read through their fd into numpy arrays, one batch syscall where possible.

Engine-neutral: the key and value dtypes come from ctypes (BCC tables, see
``read_table``) or from BTF (CO-RE maps, ``read_map_fd`` directly).
"""
from __future__ import annotations

import ctypes as ct
import dataclasses
import errno
import functools

import numpy as np

from . import libbpf
from .dtypes import dtype_of
from .errors import MapError
from .uapi import MapType

# Per-CPU maps hold one value per possible CPU under each key.
PERCPU_MAPS = frozenset({MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH})
# Maps of records read by polling (h.events), not by key.
RECORD_MAPS = frozenset({MapType.PERF_EVENT_ARRAY, MapType.RINGBUF})
_NOT_KEY_VALUE = RECORD_MAPS | {MapType.QUEUE, MapType.STACK}

# ENOTSUPP is kernel-internal (524) but leaks to user space from the bpf syscall
# when a map type has no batch ops.
_ENOTSUPP = 524
_NO_BATCH = {errno.EINVAL, _ENOTSUPP, errno.EOPNOTSUPP}

# Bounds the first buffer allocation for huge, mostly empty maps; the reader
# grows it if the map really holds more.
_FIRST_READ_BYTES = 64 << 20


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


def cpu_list(path: str) -> list[int]:
    """CPUs from a sysfs list such as "0-3,6"."""
    cpus: list[int] = []
    with open(path) as f:
        for part in f.read().strip().split(","):
            lo, _, hi = part.partition("-")
            cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


@functools.lru_cache(maxsize=1)
def possible_cpus() -> tuple[int, ...]:
    """The CPUs the kernel sizes per-CPU map values for (possible, not just online)."""
    return tuple(cpu_list("/sys/devices/system/cpu/possible"))


def online_cpus() -> list[int]:
    return cpu_list("/sys/devices/system/cpu/online")


@dataclasses.dataclass
class RawMap:
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


def read_table(table) -> RawMap:
    """A BCC table (anything with ``Key``, ``Leaf`` and ``map_fd``), its dtypes from the ctypes types."""
    fd = getattr(table, "map_fd", None)
    if not isinstance(fd, int) or fd < 0:
        return _read_items(table)
    info = _map_info(fd)
    name = _table_name(table) or info.name.decode(errors="replace")
    _check_key_value_map(info, name)
    percpu = info.type in PERCPU_MAPS
    key_t = table.Key
    if ct.sizeof(key_t) != info.key_size:
        raise MapError(f"key type {key_t.__name__} is {ct.sizeof(key_t)} bytes but the kernel map "
                       f"uses {info.key_size}-byte keys", where=name,
                       hint="pass the right keytype to bpf.get_table()")
    leaf_t = _leaf_type(table, info.value_size, percpu, name)
    return read_map_fd(fd, dtype_of(key_t), dtype_of(leaf_t), name, info)


def _check_key_value_map(info, name: str) -> None:
    if info.type in _NOT_KEY_VALUE:
        raise MapError(f"'{name}' is a {MapType.label(info.type)} map, not a key/value map",
                       hint="read its records with h.events(name)" if info.type in RECORD_MAPS else None)


def read_map_fd(fd: int, kdt: np.dtype, vdt: np.dtype, name: str | None = None, info=None) -> RawMap:
    """A whole map read through its fd into arrays of the given key and value dtypes.

    Engine-neutral: BCC cells give dtypes from ctypes, CO-RE cells from BTF.
    """
    info = info or _map_info(fd)
    name = name or info.name.decode(errors="replace")
    _check_key_value_map(info, name)
    percpu = info.type in PERCPU_MAPS
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
    return RawMap(keys, values, info.type, name, cpus)


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


def _read_items(table) -> RawMap:
    """For table-like objects without a kernel fd: whatever ``items()`` yields."""
    kdt, vdt = dtype_of(table.Key), dtype_of(table.Leaf)
    pairs = list(table.items())
    kraw = b"".join(bytes(k) for k, _ in pairs)
    vraw = b"".join(bytes(v) for _, v in pairs)
    keys = np.frombuffer(kraw, dtype=kdt, count=len(pairs))
    values = np.frombuffer(vraw, dtype=vdt, count=len(pairs))
    return RawMap(keys, values, None, _table_name(table), None)
