"""A vmlinux.h with only the kernel types a cell names, so clang compiles it in tens of milliseconds.

The whole vmlinux.h costs a CO-RE cell about 0.25 s even precompiled: a cell
that touches ``task_struct`` drags the type's whole closure into debug info,
which the BPF backend turns into BTF. The header made here holds, for each
kernel type the cell names, the type's full definition with forward
declarations for what it only points to (libbpf's ``btf_dump`` emits exactly
that for a root type), plus the enums and kfunc prototypes the cell names.
Layouts are the kernel's own and every record keeps ``preserve_access_index``,
so CO-RE relocates the fields as it would with the whole header. Beside the
header goes the same cut of the kernel's BTF (``subset_btf``), which libbpf
then relocates against instead of parsing the whole kernel BTF each load.

When the cell reaches a type it does not name (``t->mm->arg_start``), clang
says which; ``toolchain`` adds it and compiles again, and falls back to the
whole header for errors the subset cannot explain. Headers are cached by the
set of types, the name index once per kernel.
"""
from __future__ import annotations

import ctypes as ct
import functools
import hashlib
import json
import os
import platform
import re

from .. import libbpf
from . import subset_btf
from .btf_types import _HEAD, ENUM, ENUM64, FWD, STRUCT, TYPEDEF, UNION, BtfTypes, _Enum, _Enum64

_PRINTF_FN = ct.CFUNCTYPE(None, ct.c_void_p, ct.c_char_p, ct.c_void_p)
_NAMED_KINDS = (STRUCT, UNION, ENUM, ENUM64, TYPEDEF)
_IDENT = re.compile(r"[A-Za-z_]\w*")
_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
# Types libbpf's own headers (bpf_helper_defs.h, bpf_tracing.h, bpf_core_read.h) use without naming
# them in the cell; scalar typedefs cost clang nothing, pt_regs is what BPF_KPROBE and PT_REGS_* read.
_ALWAYS = ("__u8", "__u16", "__u32", "__u64", "__s8", "__s16", "__s32", "__s64", "__be16", "__be32",
           "__be64", "__le16", "__le32", "__le64", "__wsum", "__sum16", "u8", "u16", "u32", "u64",
           "s8", "s16", "s32", "s64", "bool", "size_t", "pt_regs", "bpf_map_type", "bpf_prog_type",
           "bpf_attach_type")
# What clang says when the subset misses a type the cell reaches only through another one.
MISSING = re.compile(r"(?:incomplete (?:definition of )?type|unknown type name|undeclared identifier|"
                     r"of type 'struct|'(?:struct|union|enum) )\s*'?(?:struct |union |enum )?(\w+)'")


def supported() -> bool:
    # btf_dump prints through a va_list; only x86-64 passes it as a plain pointer ctypes can forward.
    return platform.machine() == "x86_64" and hasattr(libbpf.lib(), "btf_dump__new")


@functools.cache
def _vmlinux() -> BtfTypes:
    """The kernel's BTF, parsed once per process."""
    return BtfTypes.vmlinux()


def _index_path(kernel_dir: str) -> str:
    return os.path.join(kernel_dir, "subset-index.json")


@functools.cache
def index(kernel_dir: str) -> dict:
    """name -> BTF ids of named types, enumerator -> enum id, kfunc -> prototype; on disk per kernel."""
    path = _index_path(kernel_dir)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        pass
    btf = _vmlinux()
    lib, types, enumerators = btf._lib, {}, {}
    for tid in range(1, len(btf)):
        t = lib.btf__type_by_id(btf.ptr, tid).contents
        kind = t.kind
        if kind not in _NAMED_KINDS:
            continue
        if t.name_off:
            types.setdefault(btf._str(t.name_off), []).append(tid)
        if kind in (ENUM, ENUM64):
            rec = _Enum if kind == ENUM else _Enum64
            for e in (rec * t.vlen).from_address(ct.addressof(t) + _HEAD):
                enumerators.setdefault(btf._str(e.name_off), tid)
    data = {"types": types, "enumerators": enumerators, "kfuncs": _kfunc_prototypes(kernel_dir)}
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)
    return data


def _kfunc_prototypes(kernel_dir: str) -> dict[str, str]:
    """kfunc name -> its ``extern ... __ksym;`` line, as bpftool wrote it into the whole vmlinux.h."""
    out = {}
    with open(os.path.join(kernel_dir, "vmlinux.h")) as f:
        for line in f:
            if line.startswith("extern ") and line.rstrip().endswith("__ksym;"):
                m = re.search(r"(\w+)\(", line)
                if m:
                    out[m.group(1)] = line.rstrip()
    return out


def names_in(cell: str) -> set[str]:
    return set(_IDENT.findall(_COMMENTS.sub(" ", cell)))


def roots(names, idx: dict) -> tuple[list[int], list[str]]:
    """BTF ids to dump and kfunc prototypes to declare for these identifiers."""
    ids, protos = set(), []
    for name in names:
        ids.update(idx["types"].get(name, ()))
        if name in idx["enumerators"]:
            ids.add(idx["enumerators"][name])
        proto = idx["kfuncs"].get(name)
        if proto:
            protos.append(proto)
            for sname in re.findall(r"\b(?:struct|union|enum)\s+(\w+)", proto):
                ids.update(idx["types"].get(sname, ()))
    return sorted(ids), sorted(protos)


def header(kernel_dir: str, names) -> str:
    """The path of a cached vmlinux.h for these identifiers (in a folder of its own, for ``-I``)."""
    idx = index(kernel_dir)
    ids, protos = roots(set(names) | set(_ALWAYS), idx)
    key = hashlib.sha256(json.dumps([ids, protos]).encode()).hexdigest()[:16]
    d = os.path.join(kernel_dir, "subset", key)
    path = os.path.join(d, "vmlinux.h")
    if not os.path.exists(path):
        os.makedirs(d, exist_ok=True)
        text = _render(ids, protos)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    # The same types as BTF, for libbpf to relocate against (a folder from before it existed gets it now).
    subset_btf.write(os.path.join(d, subset_btf.FILE), _vmlinux, ids)
    return d


def _render(ids: list[int], protos: list[str]) -> str:
    body = _dump(ids)
    kfuncs = "\n".join(["#ifndef BPF_NO_KFUNC_PROTOTYPES", *protos, "#endif", ""]) if protos else ""
    return ("#ifndef __VMLINUX_H__\n#define __VMLINUX_H__\n"
            "/* The kernel types this cell names, from its BTF (ebpf_magic.core.vmlinux_subset). */\n"
            "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n"
            "#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)\n#endif\n"
            "#ifndef __ksym\n#define __ksym __attribute__((section(\".ksyms\")))\n#endif\n"
            "#ifndef __weak\n#define __weak __attribute__((weak))\n#endif\n"
            f"{body}\n{kfuncs}"
            "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute pop\n#endif\n"
            "#endif /* __VMLINUX_H__ */\n")


@functools.cache
def _libc() -> ct.CDLL:
    c = ct.CDLL(None)
    c.vsnprintf.argtypes = [ct.c_char_p, ct.c_size_t, ct.c_char_p, ct.c_void_p]
    c.vsnprintf.restype = ct.c_int
    return c


def _dump(ids: list[int]) -> str:
    """C for these types and what they embed, in dependency order, by libbpf's btf_dump."""
    chunks: list[str] = []
    buf = ct.create_string_buffer(1 << 16)
    saved = (ct.c_uint8 * 24)()  # x86-64 va_list: copying the tag is va_copy

    def emit(_ctx, fmt, args):
        ct.memmove(saved, args, 24)
        n = _libc().vsnprintf(buf, len(buf), fmt, args)
        if n >= len(buf):
            big = ct.create_string_buffer(n + 1)
            _libc().vsnprintf(big, n + 1, fmt, ct.addressof(saved))
            chunks.append(big.value.decode(errors="replace"))
        else:
            chunks.append(buf.value.decode(errors="replace"))

    cb = _PRINTF_FN(emit)
    lib = libbpf.lib()
    d = lib.btf_dump__new(_vmlinux().ptr, cb, None, None)
    if not d:
        raise OSError(ct.get_errno(), "btf_dump__new failed")
    try:
        for tid in ids:
            if _vmlinux().kind(tid) == FWD:
                continue
            ret = lib.btf_dump__dump_type(d, tid)
            if ret < 0:
                raise OSError(-ret, f"btf_dump__dump_type({tid}) failed")
    finally:
        lib.btf_dump__free(d)
    return "".join(chunks)
