"""numpy layouts for C types, and the DataFrame columns made from them.

Engine-neutral: BCC cells describe their types as ctypes (``dtype_of``),
CO-RE cells as BTF (``core.btf``); both end up as numpy dtypes that
``flatten`` turns into named columns the same way.
"""
from __future__ import annotations

import ctypes as ct

import numpy as np

# dtype metadata tag of a bit field: (bit shift, bit width, signed). The
# storage unit stays in the dtype so raw bytes keep their layout; flatten()
# extracts the bits.
BITS_KEY = "ebpf_magic.bits"

# BCC inserts explicit padding members so its packed ctypes mirror the C layout;
# they carry no information and would only clutter the frame.
PAD_PREFIX = "__pad_"


# --------------------------------------------------------------------------- dtypes

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
            formats.append(np.dtype(storage, metadata={BITS_KEY: (shift, width, signed)}))
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
        if name.startswith(PAD_PREFIX):
            continue
        sub = arr[name]
        if sub.dtype.names is not None and sub.ndim == arr.ndim:
            _flatten_into(sub, f"{path}{name}.", out)
        else:
            out[f"{path}{name}"] = _column(sub)


def _column(a: np.ndarray):
    bits = (a.dtype.metadata or {}).get(BITS_KEY)
    if bits is not None:
        return extract_bits(a, *bits)
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


def extract_bits(a: np.ndarray, shift: int, width: int, signed: bool) -> np.ndarray:
    """The bit field's values from its storage units, as the smallest numpy integer that holds them."""
    u = a.astype(f"u{a.dtype.itemsize}").astype(np.uint64)
    mask = np.uint64((1 << width) - 1)
    v = (u >> np.uint64(shift)) & mask
    size = max(1, -(-width // 8))
    size = 1 << (size - 1).bit_length()  # round to a numpy integer size
    if not signed:
        return v.astype(f"u{size}")
    sign = np.uint64(1 << (width - 1))
    return ((v ^ sign).astype(np.int64) - np.int64(1 << (width - 1))).astype(f"i{size}")


# --------------------------------------------------------------------------- dtype walking

def dtype_metadata(dt: np.dtype) -> dict:
    """The metadata tags of a dtype, or of the element dtype of a sub-array."""
    if dt.subdtype is not None:
        dt = dt.subdtype[0]
    return dict(dt.metadata or {})


def columns_of(dt: np.dtype, prefix: str = "value", base: int = 0):
    """(column name, dtype, byte offset) of each column ``flatten(arr, prefix)`` makes from ``dt``."""
    if dt.names is None:
        yield prefix, dt, base
        return
    yield from _fields(dt, "", base)


def _fields(dt: np.dtype, path: str, base: int):
    for name in dt.names:
        if name.startswith(PAD_PREFIX):
            continue
        fdt, off = dt.fields[name][:2]
        if fdt.names is not None:
            yield from _fields(fdt, f"{path}{name}.", base + off)
        else:
            yield f"{path}{name}", fdt, base + off


def record_dtype(fields, itemsize: int) -> np.dtype:
    """A structured dtype from (name, byte offset, dtype) members, as BTF or DWARF describe a struct.

    C lets code use an anonymous member's fields directly, so they are inlined as columns; an
    anonymous member whose fields would clash is kept whole as ``_anonN``.
    """
    names: list[str] = []
    formats: list[np.dtype] = []
    offsets: list[int] = []
    anon = 0
    for name, off, fdt in fields:
        if not name:
            if fdt.names is not None and not set(fdt.names) & set(names):
                for sub in fdt.names:
                    sdt, soff = fdt.fields[sub][:2]
                    names.append(sub)
                    formats.append(sdt)
                    offsets.append(off + soff)
                continue
            anon += 1
            name = f"_anon{anon}"
        names.append(name)
        formats.append(fdt)
        offsets.append(off)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize})
