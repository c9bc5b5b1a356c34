"""The kernel's BTF cut down to the types of a cell's subset vmlinux.h, for libbpf's CO-RE relocations.

libbpf parses the whole kernel BTF (/sys/kernel/btf/vmlinux, megabytes) on
every load of an object with CO-RE relocations: about 15 ms of CPU, most of
what an unchanged re-run costs. ``bpf_object_open_opts.btf_custom_path``
names another BTF to relocate against instead. The one written here holds
the types the cell's subset header was made from, with the kernel's own
layouts, and whatever they embed; what they only point to becomes a forward
declaration, as in the header. Every type clang could relocate against came
from that header, so libbpf finds the same candidates it would find in the
whole BTF.

Used only when it ``covers`` the object: every CO-RE relocation names a type
it has (by kind and name, ``___flavour`` suffix dropped, as libbpf matches).
A type of the cell's own that is not in it (a module's, say: libbpf searches
module BTF only without a custom path) keeps the whole kernel BTF.
"""
from __future__ import annotations

import ctypes as ct
import os
import struct

from . import btf_types as k
from .btf_types import BtfTypes

_MAGIC, _VERSION, _HDR = 0xEB9F, 1, struct.Struct("<HBBIIIII")
# Bytes after the 12-byte head, fixed or per vlen entry (uapi/linux/btf.h).
_EXTRA = {k.INT: 4, k.ARRAY: 12, k.VAR: 4, k.DECL_TAG: 4}
_PER_ENTRY = {k.STRUCT: 12, k.UNION: 12, k.ENUM: 8, k.ENUM64: 12, k.FUNC_PROTO: 8, k.DATASEC: 12}
FILE = "vmlinux.btf"
_EXT_HDR = struct.Struct("<HBBIIIIIII")  # struct btf_ext_header with the CO-RE relocation part
_RELO = struct.Struct("<IIII")           # struct bpf_core_relo: insn_off, type_id, access_str_off, kind
_TYPE_ID_LOCAL = 6                       # BPF_CORE_TYPE_ID_LOCAL: needs no target type


def _size(kind: int, vlen: int) -> int:
    return 12 + _EXTRA.get(kind, 0) + _PER_ENTRY.get(kind, 0) * vlen


class _Writer:
    def __init__(self, btf: BtfTypes, full: set[int]):
        self.btf, self.full = btf, full
        self.ids: dict[tuple[int, bool], int] = {}   # (kernel id, as a forward) -> new id
        self.records: list[bytearray] = []
        self.strings = bytearray(b"\0")
        self.offsets = {"": 0}

    def string(self, kernel_off: int) -> int:
        s = self.btf._str(kernel_off) if kernel_off else ""
        off = self.offsets.get(s)
        if off is None:
            off = self.offsets[s] = len(self.strings)
            self.strings += s.encode() + b"\0"
        return off

    def add(self, tid: int, behind_ptr: bool = False) -> int:
        """The new id of kernel type ``tid``, written with what it needs first-come (ids are forward refs)."""
        if tid == 0:
            return 0
        t = self.btf.type(tid)
        kind = t.kind
        fwd = behind_ptr and kind in (k.STRUCT, k.UNION) and tid not in self.full and t.name_off != 0
        key = (tid, fwd)
        new = self.ids.get(key)
        if new is not None:
            return new
        new = self.ids[key] = len(self.records) + 1
        if fwd:
            rec = bytearray(struct.pack("<III", self.string(t.name_off), k.FWD << 24 | (kind == k.UNION) << 31, 0))
            self.records.append(rec)
            return new
        rec = bytearray(ct.string_at(ct.addressof(t), _size(kind, t.vlen)))
        self.records.append(rec)  # placed now so ids stay in order; references patched below
        struct.pack_into("<I", rec, 0, self.string(t.name_off))
        ptr_inside = behind_ptr or kind in (k.PTR, k.FUNC_PROTO)
        if kind in (k.STRUCT, k.UNION):
            for i in range(t.vlen):
                at = 12 + 12 * i
                name, ref = struct.unpack_from("<II", rec, at)
                struct.pack_into("<II", rec, at, self.string(name), self.add(ref, False))
        elif kind == k.ARRAY:
            elem, index = struct.unpack_from("<II", rec, 12)
            struct.pack_into("<II", rec, 12, self.add(elem, behind_ptr), self.add(index))
        elif kind in (k.ENUM, k.ENUM64):
            step = _PER_ENTRY[kind]
            for i in range(t.vlen):
                at = 12 + step * i
                struct.pack_into("<I", rec, at, self.string(struct.unpack_from("<I", rec, at)[0]))
        elif kind == k.FUNC_PROTO:
            struct.pack_into("<I", rec, 8, self.add(t.size_or_type, True))
            for i in range(t.vlen):
                at = 12 + 8 * i
                name, ref = struct.unpack_from("<II", rec, at)
                struct.pack_into("<II", rec, at, self.string(name), self.add(ref, True))
        elif kind == k.DATASEC:
            raise ValueError("data sections are not kernel types a cell names")
        elif kind not in (k.INT, k.ENUM, k.ENUM64, k.FWD, k.FLOAT):  # these hold a size, not a type id
            struct.pack_into("<I", rec, 8, self.add(t.size_or_type, ptr_inside))
        return new

    def blob(self) -> bytes:
        types = b"".join(self.records)
        return _HDR.pack(_MAGIC, _VERSION, 0, _HDR.size, 0, len(types), len(types), len(self.strings)) + types + \
            bytes(self.strings)


def build(btf: BtfTypes, ids: list[int]) -> bytes:
    """Raw BTF of kernel types ``ids`` in full, what they embed, and forwards for what they point to."""
    w = _Writer(btf, set(ids))
    for tid in ids:
        w.add(tid)
    return w.blob()


def write(path: str, kernel_btf, ids: list[int]) -> str:
    """Write ``build(kernel_btf(), ids)`` to ``path`` unless it is there (``kernel_btf`` parses only if needed)."""
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(build(kernel_btf(), ids))
        os.replace(tmp, path)
    return path


def _lib():
    from .. import libbpf

    lib = libbpf.lib()
    for fn, args in (("btf__parse_raw", [ct.c_char_p]), ("btf__parse_elf", [ct.c_char_p, ct.c_void_p])):
        getattr(lib, fn).restype, getattr(lib, fn).argtypes = ct.c_void_p, args
    return lib


def _elf_section(elf: bytes, wanted: bytes) -> bytes:
    """A section's bytes from a little-endian ELF64 object (clang's BPF output), or b"" if it has none."""
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    entsize, count, names_index = struct.unpack_from("<HHH", elf, 0x3A)
    def header(i):  # (sh_name, sh_offset, sh_size)
        at = shoff + i * entsize
        return struct.unpack_from("<I", elf, at)[0], *struct.unpack_from("<QQ", elf, at + 24)
    _, names_at, _ = header(names_index)
    for i in range(count):
        name, offset, size = header(i)
        start = names_at + name
        if elf[start:start + len(wanted) + 1] == wanted + b"\0":
            return elf[offset:offset + size]
    return b""


def _relocated_type_ids(elf: bytes) -> set[int]:
    """Object BTF ids of the local types the object's CO-RE relocations name (its .BTF.ext)."""
    data = _elf_section(elf, b".BTF.ext")
    if len(data) < _EXT_HDR.size:
        return set()
    *_, hdr_len, _fi_off, _fi_len, _li_off, _li_len, relo_off, relo_len = _EXT_HDR.unpack_from(data)
    if hdr_len < _EXT_HDR.size or not relo_len:
        return set()
    at, end = hdr_len + relo_off, hdr_len + relo_off + relo_len
    rec_size = struct.unpack_from("<I", data, at)[0]
    at += 4
    ids = set()
    while at + 8 <= end:
        _sec_name, count = struct.unpack_from("<II", data, at)
        at += 8
        for i in range(count):
            _insn, type_id, _access, kind = _RELO.unpack_from(data, at + i * rec_size)
            if kind != _TYPE_ID_LOCAL:
                ids.add(type_id)
        at += count * rec_size
    return ids


def covers(elf_path: str, target_path: str) -> bool:
    """Whether libbpf finds, in the BTF at ``target_path``, a candidate for every CO-RE relocation of the object."""
    with open(elf_path, "rb") as f:
        elf = f.read()
    wanted = _relocated_type_ids(elf)
    if not wanted:
        return True
    lib = _lib()
    obj = lib.btf__parse_elf(elf_path.encode(), None)
    target = lib.btf__parse_raw(target_path.encode())
    try:
        if not obj or not target:
            return False
        local = BtfTypes(obj)
        for tid in wanted:
            t = local.type(tid)
            name = local._str(t.name_off).split("___")[0] if t.name_off else ""
            if not name or lib.btf__find_by_name_kind(target, name.encode(), t.kind) < 0:
                return False
        return True
    finally:
        for p in (obj, target):
            if p:
                lib.btf__free(p)
