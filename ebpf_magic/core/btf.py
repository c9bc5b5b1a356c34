"""Map, event and global-variable values from BTF, as DataFrame columns and Python data.

A CO-RE cell's object file carries BTF for every type its maps and globals
use, so the lab never needs ctypes mirrors of the cell's C types. Three
layers, one module each:

* ``btf_types``: the type records libbpf parsed (kinds, members, enumerators,
  data sections);
* ``btf_dtypes``: numpy dtypes with the compiler's layout (see its docstring
  for how each C type comes out);
* here, ``Btf``: records decoded into columns named as ``dtypes.flatten``
  names them, with enum values replaced by enumerator names (``decode``, and
  ``name_enums`` for a finished frame), 128-bit integers as Python ints, and
  ``globals_frame`` for a data section's variables.
"""
from __future__ import annotations

import sys

import numpy as np

from ..dtypes import columns_of, dtype_metadata, flatten
from .btf_dtypes import ENUM_KEY, WIDE_KEY, BtfDtypes
from .btf_types import (
    ARRAY,
    CONST,
    DATASEC,
    DECL_TAG,
    ENUM,
    ENUM64,
    FLOAT,
    FUNC,
    FUNC_PROTO,
    FWD,
    INT,
    KINDS,
    KINDS_BY_ID,
    PTR,
    RESTRICT,
    STRUCT,
    TYPE_TAG,
    TYPEDEF,
    UNION,
    VAR,
    VOLATILE,
)

__all__ = ["ARRAY", "CONST", "DATASEC", "DECL_TAG", "ENUM", "ENUM64", "FLOAT", "FUNC", "FUNC_PROTO", "FWD",
           "INT", "KINDS", "KINDS_BY_ID", "PTR", "RESTRICT", "STRUCT", "TYPEDEF", "TYPE_TAG", "UNION", "VAR",
           "VOLATILE", "Btf", "globals_frame"]


class Btf(BtfDtypes):
    """A ``struct btf *`` from libbpf, with numpy views of its types and decoders of its values.

    ``Btf(ptr)`` borrows the pointer (e.g. ``bpf_object__btf(obj)``): it stays
    valid only while the object is open, and is not freed here. ``Btf.vmlinux()``
    owns its BTF and frees it on ``close()``.
    """

    def enum_names(self, type_id: int, prefix: str = "value") -> dict[str, dict[int, str]]:
        """column -> {value: enumerator} for every enum-typed column ``decode``/``flatten`` make.

        Column names are those of ``dtypes.flatten(arr, prefix)``: ``prefix``
        for a scalar enum, else the field path (``state``, ``inner.state``).
        """
        return {path: self.enumerators(dtype_metadata(fdt)[ENUM_KEY])
                for path, fdt, _ in columns_of(self.dtype(type_id), prefix)
                if ENUM_KEY in dtype_metadata(fdt)}

    def array(self, raw, type_id: int, count: int | None = None) -> np.ndarray:
        """``count`` records of ``type_id`` viewed from ``raw`` (all whole records if None), no copy."""
        dt = self.dtype(type_id)
        nbytes = memoryview(raw).nbytes
        if count is None:
            count = nbytes // dt.itemsize if dt.itemsize else 0
        if dt.itemsize == 0:
            return np.zeros(count, dt)
        if count * dt.itemsize > nbytes:
            raise ValueError(f"{nbytes} bytes hold fewer than {count} records of {self.type_str(type_id)} "
                             f"({dt.itemsize} bytes each)")
        return np.frombuffer(raw, dtype=dt, count=count)

    def decode(self, raw, type_id: int, count: int | None = None, prefix: str = "value") -> dict[str, object]:
        """Columns (as ``dtypes.flatten`` names them) of ``count`` records of ``type_id`` in ``raw``.

        Enum columns hold enumerator names (values without a name stay
        ints), bit fields are integer columns, ``char[N]`` is ``str``.
        """
        cols = flatten(self.array(raw, type_id, count), prefix)
        return self._postprocess(cols, type_id, prefix)

    def _postprocess(self, cols: dict, type_id: int, prefix: str) -> dict:
        for path, fdt, _ in columns_of(self.dtype(type_id), prefix):
            meta = dtype_metadata(fdt)
            if path not in cols or not meta:
                continue
            if WIDE_KEY in meta:
                cols[path] = _wide_ints(cols[path], meta[WIDE_KEY])
            if ENUM_KEY in meta:
                cols[path] = _named(cols[path], self.enumerators(meta[ENUM_KEY]))
        return cols

    def name_enums(self, df, key_type_id: int | None = None, value_type_id: int | None = None):
        """Replace enum values by names in a ``frames.frame_from_arrays`` frame (in place; returns it)."""
        for side, tid in (("key", key_type_id), ("value", value_type_id)):
            if not tid:
                continue
            for path, names in self.enum_names(tid, side).items():
                # frame_from_arrays prefixes a column only when key and value share its name
                col = f"{side}.{path}" if f"{side}.{path}" in df.columns else path
                if col in df.columns:
                    df[col] = _named(df[col].to_numpy(), names)
        return df

    def value(self, raw, type_id: int):
        """One record of ``type_id`` as Python data: ints, floats, str for ``char[N]``, enum names,
        lists for arrays, dicts (nested) for structs and unions."""
        cols = self.decode(raw, type_id, 1, prefix="")
        if set(cols) == {""}:
            return _py(cols[""][0])
        out: dict = {}
        for path, col in cols.items():
            *outer, last = path.split(".")
            d = out
            for part in outer:
                d = d.setdefault(part, {})
            d[last] = _py(col[0])
        return out


def globals_frame(btf: Btf, section_name: str, raw_bytes) -> dict[str, object]:
    """variable -> Python value for every global of a data section, from the section's bytes.

    ``raw_bytes`` is the section's image, e.g. ``bpf_map__initial_value`` of
    its map before load, or the map's value after; see ``Btf.value`` for how
    values come out.
    """
    mem = memoryview(raw_bytes).cast("B")
    out: dict[str, object] = {}
    for name, off, tid in btf.datasec(section_name):
        size = btf.size(tid)
        if off + size > len(mem):
            raise ValueError(f"{section_name}: variable {name} at {off}+{size} lies past the "
                             f"{len(mem)} bytes given")
        out[name] = btf.value(mem[off:off + size], tid)
    return out


# --------------------------------------------------------------------------- helpers

def _named(col, names: dict[int, str]) -> np.ndarray:
    """An object column with enumerator names in place of known values."""
    a = np.asarray(col)
    if a.dtype != object and a.ndim == 1:
        # one dict lookup per distinct value, not per row
        uniq, inverse = np.unique(a, return_inverse=True)
        lut = np.empty(len(uniq), dtype=object)
        for i, v in enumerate(uniq.tolist()):
            lut[i] = names.get(v, v)
        return lut[inverse.reshape(-1)]
    out = np.empty(len(a), dtype=object)
    for i, cell in enumerate(a.tolist()):
        out[i] = _name_nested(cell, names)
    return out


def _name_nested(cell, names):
    if isinstance(cell, list):
        return [_name_nested(c, names) for c in cell]
    return names.get(cell, cell) if isinstance(cell, int) else cell


def _wide_ints(col, signed: bool) -> np.ndarray:
    a = np.asarray(col)
    if a.dtype.kind != "V" or a.ndim != 1:
        return col
    raw = np.ascontiguousarray(a).view(np.uint8).reshape(len(a), -1)
    out = np.empty(len(a), dtype=object)
    for i, row in enumerate(raw):
        out[i] = int.from_bytes(row.tobytes(), sys.byteorder, signed=signed)
    return out


def _py(v):
    """A numpy scalar as the plain Python value (lists and str are already plain)."""
    if isinstance(v, np.void):
        return bytes(v)
    if isinstance(v, np.generic):
        return v.item()
    return v
