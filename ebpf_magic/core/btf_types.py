"""Raw access to BTF: the type records of a ``struct btf *`` that libbpf parsed.

Kinds, names, members, enumerators, data sections and C spellings; no numpy.
``btf_dtypes`` builds numpy layouts on top, ``btf`` decodes values.
"""
from __future__ import annotations

import ctypes as ct

from .. import libbpf

# BTF kinds (uapi/linux/btf.h)
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, DATASEC = 9, 10, 11, 12, 13, 14, 15
FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = 16, 17, 18, 19

KINDS = {"int": INT, "ptr": PTR, "array": ARRAY, "struct": STRUCT, "union": UNION, "enum": ENUM,
         "fwd": FWD, "typedef": TYPEDEF, "volatile": VOLATILE, "const": CONST, "restrict": RESTRICT,
         "func": FUNC, "func_proto": FUNC_PROTO, "var": VAR, "datasec": DATASEC, "float": FLOAT,
         "decl_tag": DECL_TAG, "type_tag": TYPE_TAG, "enum64": ENUM64}
KINDS_BY_ID = {v: k for k, v in KINDS.items()}
_MODIFIERS = {TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG}
# A name can belong to several kinds (``typedef struct foo foo``); the
# aggregate is what callers usually mean.
_FIND_ORDER = (STRUCT, UNION, ENUM, ENUM64, TYPEDEF, INT, FLOAT, VAR, DATASEC, FUNC)

# BTF_INT_ENCODING bits of an INT type
INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4


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


class BtfTypes:
    """A ``struct btf *`` from libbpf and the type records libbpf hands back.

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

    @classmethod
    def of_object(cls, obj) -> BtfTypes:
        return cls(libbpf.lib().bpf_object__btf(obj))

    @classmethod
    def vmlinux(cls) -> BtfTypes:
        ptr = libbpf.lib().btf__load_vmlinux_btf()
        if not ptr:
            err = ct.get_errno()
            raise OSError(err, f"cannot load the kernel's BTF: {libbpf.strerror(err)}")
        return cls(ptr, owned=True)

    def close(self) -> None:
        if self._owned and self.ptr:
            self._lib.btf__free(self.ptr)
        self.ptr = 0

    def __enter__(self) -> BtfTypes:
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
        signed = self.enum_signed(t)
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

    def enum_signed(self, t: libbpf.BtfType) -> bool:
        if t.kind_flag:
            return True
        # Compilers before the signedness flag (clang < 15) only tell us by negative values.
        return t.kind == ENUM and any(e.val < 0 for e in _records(t, _Enum, t.vlen))

    def int_encoding(self, t: libbpf.BtfType) -> int:
        return (_records(t, ct.c_uint32, 1)[0] >> 24) & 0xF

    def is_char(self, type_id: int) -> bool:
        t = self.type(self.resolve(type_id))
        return (t.kind == INT and t.size_or_type == 1
                and (bool(self.int_encoding(t) & INT_CHAR) or self._str(t.name_off) == "char"))

    def array_info(self, t: libbpf.BtfType) -> tuple[int, int]:
        """(element type id, number of elements) of an ARRAY type record."""
        a = _records(t, _Array, 1)[0]
        return a.type, a.nelems

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
