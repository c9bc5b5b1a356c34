"""Map, event and global-variable layouts from BTF, as numpy dtypes and DataFrame columns.

A CO-RE cell's object file carries BTF for every type its maps and globals
use, so the lab never needs ctypes mirrors of the cell's C types: ``Btf``
turns a BTF type into a numpy dtype with exactly the compiler's layout, and
``frames.flatten`` turns arrays of it into columns. libbpf parses the BTF;
this module only reads the small per-kind records libbpf hands back.

How the C types come out:

* integers become the numpy integer of the same size and signedness, ``bool``
  becomes ``bool``, a lone ``char`` is a number (``int8``), ``char[N]`` is a
  string column; 128-bit integers become Python ints;
* enums hold their integer in the dtype; ``decode`` (and ``name_enums`` for
  a finished frame) replaces known values by the enumerator's name;
* pointers are ``uint64`` addresses; floats are numpy floats;
* structs and unions are structured dtypes with BTF's offsets and size
  (union members overlap); a nested struct becomes ``outer.inner`` columns,
  an anonymous struct or union member is inlined as in C;
* bit fields are stored in the dtype as the smallest integer covering their
  bits, tagged the way ``frames`` tags ctypes bit fields, so ``flatten``
  shifts and masks them into ordinary integer columns;
* anything without a numeric meaning (functions, forward declarations) is
  raw bytes ``V<size>``.
"""
from __future__ import annotations

import ctypes as ct
import sys

import numpy as np

from .. import libbpf
from ..frames import _BITS_KEY, _PAD_PREFIX, flatten

# BTF kinds (uapi/linux/btf.h)
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, DATASEC = 9, 10, 11, 12, 13, 14, 15
FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = 16, 17, 18, 19

KINDS = {"int": INT, "ptr": PTR, "array": ARRAY, "struct": STRUCT, "union": UNION, "enum": ENUM,
         "fwd": FWD, "typedef": TYPEDEF, "volatile": VOLATILE, "const": CONST, "restrict": RESTRICT,
         "func": FUNC, "func_proto": FUNC_PROTO, "var": VAR, "datasec": DATASEC, "float": FLOAT,
         "decl_tag": DECL_TAG, "type_tag": TYPE_TAG, "enum64": ENUM64}
_MODIFIERS = {TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG}
# A name can belong to several kinds (``typedef struct foo foo``); the
# aggregate is what callers usually mean.
_FIND_ORDER = (STRUCT, UNION, ENUM, ENUM64, TYPEDEF, INT, FLOAT, VAR, DATASEC, FUNC)

_INT_SIGNED, _INT_CHAR, _INT_BOOL = 1, 2, 4

# Extra dtype metadata, next to frames' bit-field tag, so a dtype alone says
# which columns to post-process after flatten().
_ENUM_KEY = "ebpf_magic.enum"      # -> the enum's BTF type id
_WIDE_KEY = "ebpf_magic.int128"    # -> signed?


class _Member(ct.Structure):
    _fields_ = [("name_off", ct.c_uint32), ("type", ct.c_uint32), ("offset", ct.c_uint32)]


class _Array(ct.Structure):
    _fields_ = [("type", ct.c_uint32), ("index_type", ct.c_uint32), ("nelems", ct.c_uint32)]


class _Enum(ct.Structure):
    _fields_ = [("name_off", ct.c_uint32), ("val", ct.c_int32)]


class _Enum64(ct.Structure):
    _fields_ = [("name_off", ct.c_uint32), ("val_lo32", ct.c_uint32), ("val_hi32", ct.c_uint32)]


class _VarSecinfo(ct.Structure):
    _fields_ = [("type", ct.c_uint32), ("offset", ct.c_uint32), ("size", ct.c_uint32)]


_HEAD = ct.sizeof(libbpf.BtfType)


def _records(t: libbpf.BtfType, record, n: int):
    """The ``n`` kind-specific records libbpf keeps right after ``t`` (views into BTF memory)."""
    return (record * n).from_address(ct.addressof(t) + _HEAD)


def _meta(dt: np.dtype) -> dict:
    if dt.subdtype is not None:
        dt = dt.subdtype[0]
    return dict(dt.metadata or {})


class Btf:
    """A ``struct btf *`` from libbpf, with numpy views of its types.

    ``Btf(ptr)`` borrows the pointer (e.g. ``bpf_object__btf(obj)``): it stays
    valid only while the object is open, and is not freed here. ``Btf.vmlinux()``
    owns its BTF and frees it on ``close()``.
    """

    def __init__(self, ptr, owned: bool = False):
        addr = ptr.value if isinstance(ptr, ct.c_void_p) else ptr
        if not addr:
            raise ValueError("no BTF: the object was compiled without -g, or libbpf could not parse it")
        self.ptr: int = addr
        self._owned = owned
        self._lib = libbpf.lib()
        self._dtypes: dict[int, np.dtype] = {}

    @classmethod
    def of_object(cls, obj) -> Btf:
        return cls(libbpf.lib().bpf_object__btf(obj))

    @classmethod
    def vmlinux(cls) -> Btf:
        ptr = libbpf.lib().btf__load_vmlinux_btf()
        if not ptr:
            err = ct.get_errno()
            raise OSError(err, f"cannot load the kernel's BTF: {libbpf.strerror(err)}")
        return cls(ptr, owned=True)

    def close(self) -> None:
        if self._owned and self.ptr:
            self._lib.btf__free(self.ptr)
        self.ptr = 0

    def __enter__(self) -> Btf:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------------- raw access

    def type(self, type_id: int) -> libbpf.BtfType:
        if not self.ptr:
            raise ValueError("this BTF was closed")
        p = self._lib.btf__type_by_id(self.ptr, type_id)
        if not p:
            raise KeyError(f"no BTF type with id {type_id}")
        return p.contents

    def __len__(self) -> int:
        """Number of type ids, void (id 0) included."""
        return self._lib.btf__type_cnt(self.ptr)

    def kind(self, type_id: int) -> int:
        return self.type(type_id).kind

    def _str(self, off: int) -> str:
        s = self._lib.btf__name_by_offset(self.ptr, off)
        return s.decode(errors="replace") if s else ""

    def name(self, type_id: int) -> str:
        """The type's own name ("" for anonymous types and for void)."""
        return self._str(self.type(type_id).name_off) if type_id else ""

    def resolve(self, type_id: int) -> int:
        """The id behind typedefs and qualifiers (0 for void)."""
        seen = 0
        while type_id and self.type(type_id).kind in _MODIFIERS:
            type_id = self.type(type_id).size_or_type
            seen += 1
            if seen > 64:
                raise ValueError(f"BTF type {type_id}: typedef/qualifier chain loops")
        return type_id

    def size(self, type_id: int) -> int:
        n = self._lib.btf__resolve_size(self.ptr, type_id)
        if n < 0:
            raise ValueError(f"BTF type {type_id} ({self.type_str(type_id)}) has no size: "
                             f"{libbpf.strerror(-n)}")
        return n

    def find(self, name: str, kind: int | str | None = None) -> int | None:
        """The id of the type called ``name`` (of ``kind``, e.g. "struct" or STRUCT), or None."""
        if isinstance(kind, str):
            kind = KINDS[kind.lower()]
        for k in (kind,) if kind is not None else _FIND_ORDER:
            tid = self._lib.btf__find_by_name_kind(self.ptr, name.encode(), k)
            if tid > 0:
                return tid
        return None

    def members(self, type_id: int) -> list[tuple[str, int, int, int]]:
        """(name, type id, bit offset, bit-field width or 0) per member of a struct or union."""
        t = self.type(self.resolve(type_id))
        if t.kind not in (STRUCT, UNION):
            raise TypeError(f"BTF type {type_id} ({self.type_str(type_id)}) is not a struct or union")
        out = []
        for m in _records(t, _Member, t.vlen):
            if t.kind_flag:
                width, bit = m.offset >> 24, m.offset & 0xFFFFFF
            else:
                width, bit = 0, m.offset
                width, bit = self._legacy_bitfield(m.type, bit)
            out.append((self._str(m.name_off), m.type, bit, width))
        return out

    def _legacy_bitfield(self, type_id: int, bit: int) -> tuple[int, int]:
        # Without kind_flag, old compilers put a bit field's geometry in the INT itself.
        t = self.type(self.resolve(type_id))
        if t.kind == INT:
            enc = _records(t, ct.c_uint32, 1)[0]
            nbits, shift = enc & 0xFF, (enc >> 16) & 0xFF
            if shift or nbits != t.size_or_type * 8:
                return nbits, bit + shift
        return 0, bit

    def enumerators(self, type_id: int) -> dict[int, str]:
        """value -> name of an enum (values signed or unsigned as the enum's storage is)."""
        t = self.type(self.resolve(type_id))
        signed = self._enum_signed(t)
        out: dict[int, str] = {}
        if t.kind == ENUM:
            for e in _records(t, _Enum, t.vlen):
                out.setdefault(e.val if signed else e.val & 0xFFFFFFFF, self._str(e.name_off))
        elif t.kind == ENUM64:
            for e in _records(t, _Enum64, t.vlen):
                v = e.val_hi32 << 32 | e.val_lo32
                if signed and v >= 1 << 63:
                    v -= 1 << 64
                out.setdefault(v, self._str(e.name_off))
        else:
            raise TypeError(f"BTF type {type_id} ({self.type_str(type_id)}) is not an enum")
        return out

    def _enum_signed(self, t: libbpf.BtfType) -> bool:
        if t.kind_flag:
            return True
        # Compilers before the signedness flag (clang < 15) only tell us by negative values.
        return t.kind == ENUM and any(e.val < 0 for e in _records(t, _Enum, t.vlen))

    def _int_encoding(self, t: libbpf.BtfType) -> int:
        return (_records(t, ct.c_uint32, 1)[0] >> 24) & 0xF

    def _is_char(self, type_id: int) -> bool:
        t = self.type(self.resolve(type_id))
        return (t.kind == INT and t.size_or_type == 1
                and (bool(self._int_encoding(t) & _INT_CHAR) or self._str(t.name_off) == "char"))

    def type_str(self, type_id: int) -> str:
        """A C-like spelling of the type, for messages and tables ("struct event", "u32 *", "char[16]")."""
        if not type_id:
            return "void"
        t = self.type(type_id)
        k, name = t.kind, self._str(t.name_off)
        if k in (STRUCT, UNION, ENUM, ENUM64, FWD):
            word = {STRUCT: "struct", UNION: "union", FWD: "struct" if not t.kind_flag else "union"}.get(k, "enum")
            return f"{word} {name or '(anon)'}"
        if k in (CONST, VOLATILE, RESTRICT):
            return f"{KINDS_BY_ID[k]} {self.type_str(t.size_or_type)}"
        if k == TYPE_TAG:
            return self.type_str(t.size_or_type)
        if k == PTR:
            return f"{self.type_str(t.size_or_type)} *"
        if k == ARRAY:
            a = _records(t, _Array, 1)[0]
            return f"{self.type_str(a.type)}[{a.nelems}]"
        if k == FUNC_PROTO:
            return f"{self.type_str(t.size_or_type)} (*)(...)"
        return name or KINDS_BY_ID.get(k, f"kind{k}")

    # ----------------------------------------------------------------------- dtypes

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
            return np.dtype(self._enum_base(t), metadata={_ENUM_KEY: rid})
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
        size, enc = t.size_or_type, self._int_encoding(t)
        if enc & _INT_BOOL and size == 1:
            return np.dtype(np.bool_)
        signed = bool(enc & _INT_SIGNED)
        if size in (1, 2, 4, 8):
            return np.dtype(f"{'i' if signed else 'u'}{size}")
        if size == 16:
            return np.dtype("V16", metadata={_WIDE_KEY: signed})
        return np.dtype(f"V{size}")

    def _enum_base(self, t: libbpf.BtfType) -> np.dtype:
        size = t.size_or_type
        if size not in (1, 2, 4, 8):
            return np.dtype(f"V{size}")
        return np.dtype(f"{'i' if self._enum_signed(t) else 'u'}{size}")

    def _array_dtype(self, t: libbpf.BtfType) -> np.dtype:
        a = _records(t, _Array, 1)[0]
        n = a.nelems
        if self._is_char(a.type):
            return np.dtype(f"S{n}")
        sub = self.dtype(a.type)
        if sub.subdtype is not None:  # int m[3][2] is one (3, 2) block, like frames.dtype_of
            base, shape = sub.subdtype
            return np.dtype((base, (n, *shape)))
        return np.dtype((sub, (n,)))

    def _record_dtype(self, rid: int, t: libbpf.BtfType) -> np.dtype:
        size = t.size_or_type
        names: list[str] = []
        formats: list[np.dtype] = []
        offsets: list[int] = []
        anon = 0
        for name, mtype, bit, width in self.members(rid):
            if width:
                placed = self._bitfield(mtype, bit, width, size)
                if placed is None or not name:  # unnamed bit fields are padding
                    continue
                off, fdt = placed
            else:
                off, fdt = bit // 8, self.dtype(mtype)
            if not name:
                # C lets code use an anonymous member's fields directly, so columns do too.
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
        return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": size})

    def _bitfield(self, type_id: int, bit: int, width: int, rec_size: int):
        """(byte offset, tagged dtype) of the smallest integer holding the bits, or None if none fits."""
        if sys.byteorder != "little":
            return None  # big-endian BTF counts bits from the other end of each unit
        rid = self.resolve(type_id)
        t = self.type(rid)
        meta = {}
        if t.kind in (ENUM, ENUM64):
            signed = self._enum_signed(t)
            meta[_ENUM_KEY] = rid
        else:
            signed = t.kind == INT and bool(self._int_encoding(t) & _INT_SIGNED)
        span = (bit % 8 + width + 7) // 8
        n = next((n for n in (1, 2, 4, 8) if n >= span), None)
        if n is None or n > rec_size:
            return None
        # The covering integer may not run past the record, so near the end it starts earlier.
        start = min(bit // 8, rec_size - n)
        meta[_BITS_KEY] = (bit - 8 * start, width, signed)
        return start, np.dtype(f"u{n}", metadata=meta)

    def bitfields(self, type_id: int) -> list[tuple[str, int, int, int, bool]]:
        """(column, byte offset, bit shift, width, signed) per bit field column of ``type_id``."""
        out = []
        for path, fdt, off in _leaves(self.dtype(type_id), ""):
            bits = _meta(fdt).get(_BITS_KEY)
            if bits is not None:
                out.append((path, off, *bits))
        return out

    # ----------------------------------------------------------------------- values

    def enum_names(self, type_id: int, prefix: str = "value") -> dict[str, dict[int, str]]:
        """column -> {value: enumerator} for every enum-typed column ``decode``/``flatten`` make.

        Column names are those of ``frames.flatten(arr, prefix)``: ``prefix``
        for a scalar enum, else the field path (``state``, ``inner.state``).
        """
        return {path: self.enumerators(_meta(fdt)[_ENUM_KEY])
                for path, fdt, _ in _leaves(self.dtype(type_id), prefix)
                if _ENUM_KEY in _meta(fdt)}

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
        """Columns (as ``frames.flatten`` names them) of ``count`` records of ``type_id`` in ``raw``.

        Enum columns hold enumerator names (values without a name stay
        ints), bit fields are integer columns, ``char[N]`` is ``str``.
        """
        cols = flatten(self.array(raw, type_id, count), prefix)
        return self._postprocess(cols, type_id, prefix)

    def _postprocess(self, cols: dict, type_id: int, prefix: str) -> dict:
        for path, fdt, _ in _leaves(self.dtype(type_id), prefix):
            meta = _meta(fdt)
            if path not in cols or not meta:
                continue
            if _WIDE_KEY in meta:
                cols[path] = _wide_ints(cols[path], meta[_WIDE_KEY])
            if _ENUM_KEY in meta:
                cols[path] = _named(cols[path], self.enumerators(meta[_ENUM_KEY]))
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

    # ----------------------------------------------------------------------- sections

    def datasecs(self) -> list[str]:
        """Names of the DATASEC types (".bss", ".data", ".rodata", ".maps", ...)."""
        return [self.name(i) for i in range(1, len(self)) if self.type(i).kind == DATASEC]

    def datasec(self, name: str) -> list[tuple[str, int, int]]:
        """(variable, byte offset, type id of its value) per variable of a data section, by offset.

        ``name`` is the section (".rodata") or libbpf's map for it ("opens.rodata").
        """
        candidates = [name]
        if not name.startswith(".") and "." in name:
            candidates.append(name[name.index("."):])
        for cand in candidates:
            tid = self.find(cand, DATASEC)
            if tid is not None:
                break
        else:
            raise KeyError(f"no data section {name!r} in this BTF (it has: {', '.join(self.datasecs()) or 'none'})")
        t = self.type(tid)
        out = []
        for s in _records(t, _VarSecinfo, t.vlen):
            var = self.type(s.type)
            if var.kind == VAR:  # .ksyms sections also list FUNCs
                out.append((self._str(var.name_off), s.offset, var.size_or_type))
        return sorted(out, key=lambda v: v[1])


KINDS_BY_ID = {v: k for k, v in KINDS.items()}


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

def _leaves(dt: np.dtype, prefix: str, base: int = 0):
    """(column name, dtype, byte offset) of each column ``frames.flatten`` makes from ``dt``."""
    if dt.names is None:
        yield prefix, dt, base
        return
    yield from _fields(dt, "", base)


def _fields(dt: np.dtype, path: str, base: int):
    for name in dt.names:
        if name.startswith(_PAD_PREFIX):
            continue
        fdt, off = dt.fields[name][:2]
        if fdt.names is not None:
            yield from _fields(fdt, f"{path}{name}.", base + off)
        else:
            yield f"{path}{name}", fdt, base + off


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
