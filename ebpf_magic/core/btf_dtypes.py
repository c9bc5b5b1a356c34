"""numpy dtypes with exactly the compiler's layout, from BTF types.

How the C types come out (``btf`` turns arrays of them into columns):

* integers become the numpy integer of the same size and signedness, ``bool``
  becomes ``bool``, a lone ``char`` is a number (``int8``), ``char[N]`` is a
  string (``S<N>``); 128-bit integers are ``V16`` tagged ``WIDE_KEY``;
* enums are their integer, tagged ``ENUM_KEY`` with the enum's type id;
* pointers are ``uint64`` addresses; floats are numpy floats;
* structs and unions are structured dtypes with BTF's offsets and size
  (union members overlap); an anonymous struct or union member is inlined
  as in C;
* bit fields are the smallest integer covering their bits, tagged the way
  ``dtypes.dtype_of`` tags ctypes bit fields, so ``dtypes.flatten`` shifts
  and masks them into ordinary integer columns;
* anything without a numeric meaning (functions, forward declarations) is
  raw bytes ``V<size>``.
"""
from __future__ import annotations

import sys

import numpy as np

from .. import libbpf
from ..dtypes import BITS_KEY, columns_of, dtype_metadata, record_dtype
from .btf_types import (
    ARRAY,
    ENUM,
    ENUM64,
    FLOAT,
    INT,
    INT_BOOL,
    INT_SIGNED,
    PTR,
    STRUCT,
    UNION,
    VAR,
    BtfTypes,
)

# Extra dtype metadata, next to dtypes' bit-field tag, so a dtype alone says
# which columns to post-process after flatten().
ENUM_KEY = "ebpf_magic.enum"      # -> the enum's BTF type id
WIDE_KEY = "ebpf_magic.int128"    # -> signed?


class BtfDtypes(BtfTypes):
    """BTF types as numpy dtypes (cached per type id)."""

    def __init__(self, ptr, owned: bool = False):
        super().__init__(ptr, owned)
        self._dtypes: dict[int, np.dtype] = {}

    def dtype(self, type_id: int) -> np.dtype:
        """The numpy dtype with the memory layout BTF gives ``type_id`` (see the module docstring)."""
        dt = self._dtypes.get(type_id)
        if dt is None:
            dt = self._dtypes[type_id] = self._build(type_id)
        return dt

    def _build(self, type_id: int) -> np.dtype:
        rid = self.resolve(type_id)
        t = self.type(rid)
        k = t.kind
        if k == INT:
            return self._int_dtype(t)
        if k in (ENUM, ENUM64):
            return np.dtype(self._enum_base(t), metadata={ENUM_KEY: rid})
        if k == PTR:
            return np.dtype(np.uint64)
        if k == FLOAT:
            return np.dtype(f"f{t.size_or_type}") if t.size_or_type in (2, 4, 8) else self._raw(rid)
        if k == ARRAY:
            return self._array_dtype(t)
        if k in (STRUCT, UNION):
            return self._record_dtype(rid, t)
        if k == VAR:
            return self.dtype(t.size_or_type)
        return self._raw(rid)

    def _raw(self, type_id: int) -> np.dtype:
        n = self._lib.btf__resolve_size(self.ptr, type_id) if type_id else 0
        return np.dtype(f"V{max(n, 0)}")

    def _int_dtype(self, t: libbpf.BtfType) -> np.dtype:
        size, enc = t.size_or_type, self.int_encoding(t)
        if enc & INT_BOOL and size == 1:
            return np.dtype(np.bool_)
        signed = bool(enc & INT_SIGNED)
        if size in (1, 2, 4, 8):
            return np.dtype(f"{'i' if signed else 'u'}{size}")
        if size == 16:
            return np.dtype("V16", metadata={WIDE_KEY: signed})
        return np.dtype(f"V{size}")

    def _enum_base(self, t: libbpf.BtfType) -> np.dtype:
        size = t.size_or_type
        if size not in (1, 2, 4, 8):
            return np.dtype(f"V{size}")
        return np.dtype(f"{'i' if self.enum_signed(t) else 'u'}{size}")

    def _array_dtype(self, t: libbpf.BtfType) -> np.dtype:
        elem, n = self.array_info(t)
        if self.is_char(elem):
            return np.dtype(f"S{n}")
        sub = self.dtype(elem)
        if sub.subdtype is not None:  # int m[3][2] is one (3, 2) block, like frames.dtype_of
            base, shape = sub.subdtype
            return np.dtype((base, (n, *shape)))
        return np.dtype((sub, (n,)))

    def _record_dtype(self, rid: int, t: libbpf.BtfType) -> np.dtype:
        size = t.size_or_type
        fields: list[tuple[str, int, np.dtype]] = []
        for name, mtype, bit, width in self.members(rid):
            if width:
                placed = self._bitfield(mtype, bit, width, size)
                if placed is None or not name:  # unnamed bit fields are padding
                    continue
                off, fdt = placed
            else:
                off, fdt = bit // 8, self.dtype(mtype)
            fields.append((name, off, fdt))
        return record_dtype(fields, size)

    def _bitfield(self, type_id: int, bit: int, width: int, rec_size: int):
        """(byte offset, tagged dtype) of the smallest integer holding the bits, or None if none fits."""
        if sys.byteorder != "little":
            return None  # big-endian BTF counts bits from the other end of each unit
        rid = self.resolve(type_id)
        t = self.type(rid)
        meta = {}
        if t.kind in (ENUM, ENUM64):
            signed = self.enum_signed(t)
            meta[ENUM_KEY] = rid
        else:
            signed = t.kind == INT and bool(self.int_encoding(t) & INT_SIGNED)
        span = (bit % 8 + width + 7) // 8
        n = next((n for n in (1, 2, 4, 8) if n >= span), None)
        if n is None or n > rec_size:
            return None
        # The covering integer may not run past the record, so near the end it starts earlier.
        start = min(bit // 8, rec_size - n)
        meta[BITS_KEY] = (bit - 8 * start, width, signed)
        return start, np.dtype(f"u{n}", metadata=meta)

    def bitfields(self, type_id: int) -> list[tuple[str, int, int, int, bool]]:
        """(column, byte offset, bit shift, width, signed) per bit field column of ``type_id``."""
        out = []
        for path, fdt, off in columns_of(self.dtype(type_id), ""):
            bits = dtype_metadata(fdt).get(BITS_KEY)
            if bits is not None:
                out.append((path, off, *bits))
        return out
