"""numpy dtypes from the DWARF of a compiled cell, for record structs BTF does not keep.

clang writes BTF only for types that globals, maps and function signatures
use, so ``struct event *e = bpf_ringbuf_reserve(...)`` leaves ``struct
event`` out of BTF, but the object's DWARF (``-g``) describes every type a
local variable has. The dtypes follow ``btf_dtypes``' conventions: integers
by size and signedness, ``char[N]`` as ``S<N>``, pointers as ``uint64``,
nested structs and unions as structured dtypes at DWARF's offsets, anonymous
members inlined, bit fields tagged with ``dtypes.BITS_KEY``; enums are their
integer tagged with ``ENUM_NAMES_KEY`` (value -> enumerator).
"""
from __future__ import annotations

import io
import sys

import numpy as np

from ..dtypes import BITS_KEY, record_dtype

ENUM_NAMES_KEY = "ebpf_magic.enum_names"
_QUALIFIERS = {"DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type", "DW_TAG_restrict_type",
               "DW_TAG_atomic_type"}
_RECORDS = {"DW_TAG_structure_type", "DW_TAG_union_type"}
_SIGNED = {0x05, 0x06, 0x0d}           # DW_ATE_signed, signed_char, signed_fixed
_CHARS = {0x06, 0x08}                  # DW_ATE_signed_char, unsigned_char
_BOOL, _FLOAT = 0x02, 0x04


def _attr(die, name, default=None):
    a = die.attributes.get(name)
    return default if a is None else a.value


def _name(die) -> str | None:
    v = _attr(die, "DW_AT_name")
    return v.decode() if isinstance(v, bytes) else v


class DwarfTypes:
    """The type DIEs of one BPF object's DWARF, by struct name, with dtypes built on demand."""

    def __init__(self, elf_bytes: bytes):
        from elftools.elf.elffile import ELFFile

        elf = ELFFile(io.BytesIO(elf_bytes))
        self.records: dict[str, object] = {}   # struct/union (or typedef of one) name -> DIE
        self.used: dict[str, int] = {}         # names local variables/parameters have, -> byte size
        self._dtypes: dict[int, np.dtype] = {}
        if not elf.has_dwarf_info():
            return
        # BPF objects use REL relocations against section symbols at 0: the unrelocated
        # offsets are already right, and pyelftools need not know the BPF relocation types.
        dwarf = elf.get_dwarf_info(relocate_dwarf_sections=False)
        for cu in dwarf.iter_CUs():
            for die in cu.iter_DIEs():
                if die.tag in _RECORDS or die.tag == "DW_TAG_typedef":
                    name = _name(die)
                    rec = self._record_of(die)
                    if name and rec is not None and not _attr(rec, "DW_AT_declaration"):
                        self.records.setdefault(name, die)
                elif die.tag in ("DW_TAG_variable", "DW_TAG_formal_parameter"):
                    self._note_use(die)

    def _target(self, die):
        return die.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in die.attributes else None

    def _strip(self, die):
        while die is not None and die.tag in _QUALIFIERS:
            die = self._target(die)
        return die

    def _record_of(self, die):
        d = self._strip(die)
        return d if d is not None and d.tag in _RECORDS else None

    def _note_use(self, var) -> None:
        t = self._target(var)
        # the struct a variable holds or points at, through typedefs and qualifiers
        while t is not None and (t.tag in _QUALIFIERS or t.tag == "DW_TAG_pointer_type"):
            if t.tag == "DW_TAG_typedef" and _name(t) and self._record_of(t) is not None:
                break
            t = self._target(t)
        if t is None:
            return
        rec = self._record_of(t)
        name = _name(t)
        if rec is not None and name:
            self.used[name] = _attr(rec, "DW_AT_byte_size", 0)

    def candidates(self, size: int) -> list[str]:
        """Names of structs of ``size`` bytes that some variable or parameter holds or points at."""
        return sorted(n for n, s in self.used.items() if s == size)

    def dtype(self, name: str) -> np.dtype | None:
        die = self.records.get(name)
        return None if die is None else self._dtype(die)

    def _dtype(self, die) -> np.dtype:
        key = die.offset
        dt = self._dtypes.get(key)
        if dt is None:
            dt = self._dtypes[key] = self._build(die)
        return dt

    def _build(self, die) -> np.dtype:
        d = self._strip(die)
        if d is None:
            return np.dtype("V0")
        size = _attr(d, "DW_AT_byte_size", 0)
        if d.tag == "DW_TAG_base_type":
            return _base(_attr(d, "DW_AT_encoding"), size)
        if d.tag == "DW_TAG_pointer_type":
            return np.dtype(np.uint64)
        if d.tag == "DW_TAG_enumeration_type":
            return self._enum(d, size)
        if d.tag == "DW_TAG_array_type":
            return self._array(d)
        if d.tag in _RECORDS:
            return self._record(d, size)
        return np.dtype(f"V{size}")

    def _enum(self, d, size: int) -> np.dtype:
        names = {}
        for c in d.iter_children():
            if c.tag == "DW_TAG_enumerator":
                names[int(_attr(c, "DW_AT_const_value"))] = _name(c)
        base = self._target(d)
        signed = base is not None and _attr(self._strip(base), "DW_AT_encoding") in _SIGNED
        if size not in (1, 2, 4, 8):
            return np.dtype(f"V{size}")
        if not signed:  # DWARF stores the values sign-extended from the underlying type's size
            names = {v & ((1 << 8 * size) - 1): n for v, n in names.items()}
        return np.dtype(f"{'i' if signed else 'u'}{size}", metadata={ENUM_NAMES_KEY: names})

    def _array(self, d) -> np.dtype:
        dims = []
        for c in d.iter_children():
            if c.tag == "DW_TAG_subrange_type":
                if "DW_AT_count" in c.attributes:
                    dims.append(int(_attr(c, "DW_AT_count")))
                elif "DW_AT_upper_bound" in c.attributes:
                    dims.append(int(_attr(c, "DW_AT_upper_bound")) + 1)
                else:
                    dims.append(0)  # a flexible array member takes no room in the record
        elem = self._strip(self._target(d))
        if elem is not None and elem.tag == "DW_TAG_base_type" and _attr(elem, "DW_AT_encoding") in _CHARS \
                and _attr(elem, "DW_AT_byte_size") == 1 and len(dims) == 1:
            return np.dtype(f"S{dims[0]}") if dims[0] else np.dtype("V0")
        sub = self._dtype(self._target(d))
        if sub.subdtype is not None:
            sub, inner = sub.subdtype
            dims += list(inner)
        if 0 in dims:
            return np.dtype("V0")
        return np.dtype((sub, tuple(dims)))

    def _record(self, d, size: int) -> np.dtype:
        fields: list[tuple[str, int, np.dtype]] = []
        for m in d.iter_children():
            if m.tag != "DW_TAG_member":
                continue
            name = _name(m)
            off = _attr(m, "DW_AT_data_member_location", 0)
            if not isinstance(off, int):
                continue  # a location expression: not a plain C layout
            if "DW_AT_bit_size" in m.attributes:
                placed = self._bitfield(m, size)
                if placed is None or not name:
                    continue
                off, fdt = placed
            else:
                fdt = self._dtype(self._target(m))
                if fdt.itemsize == 0:
                    continue
            fields.append((name, off, fdt))
        return record_dtype(fields, size)

    def _bitfield(self, m, rec_size: int):
        if sys.byteorder != "little" or "DW_AT_data_bit_offset" not in m.attributes:
            return None  # DWARF 2/3 bit offsets count from the other end: not worth the branch here
        bit, width = int(_attr(m, "DW_AT_data_bit_offset")), int(_attr(m, "DW_AT_bit_size"))
        base = self._strip(self._target(m))
        signed = base is not None and _attr(base, "DW_AT_encoding") in _SIGNED
        span = (bit % 8 + width + 7) // 8
        n = next((n for n in (1, 2, 4, 8) if n >= span), None)
        if n is None or n > rec_size:
            return None
        start = min(bit // 8, rec_size - n)
        return start, np.dtype(f"u{n}", metadata={BITS_KEY: (bit - 8 * start, width, signed)})


def _base(encoding, size: int) -> np.dtype:
    if encoding == _BOOL and size == 1:
        return np.dtype(np.bool_)
    if encoding == _FLOAT and size in (2, 4, 8):
        return np.dtype(f"f{size}")
    if size in (1, 2, 4, 8):
        return np.dtype(f"{'i' if encoding in _SIGNED else 'u'}{size}")
    return np.dtype(f"V{size}")
