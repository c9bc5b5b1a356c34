"""``--set NAME=VALUE``: a global of a CO-RE cell, its value parsed against the global's BTF type.

Every value is checked (the name is a settable global, the text parses as its
type and fits) before any is written into the object's data images, and all
of that happens before ``bpf_object__load``: a bad ``--set`` loads nothing.
"""
from __future__ import annotations

import ctypes as ct
import sys
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from .btf import ARRAY, ENUM, ENUM64, FLOAT, INT, PTR, STRUCT, UNION, Btf

_WRITABLE = (".rodata", ".data", ".bss")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_EXAMPLE = "declare it at file scope, e.g. const volatile int target_pid = 0;"


@dataclass(frozen=True)
class GlobalVar:
    name: str
    section: str     # ".rodata", ".data.custom", ...
    offset: int
    type_id: int     # the VAR's type, qualifiers included


def variables(btf: Btf) -> dict[str, GlobalVar]:
    out = {}
    for sec in btf.datasecs():
        for name, offset, type_id in btf.datasec(sec):
            out.setdefault(name, GlobalVar(name, sec, offset, type_id))
    return out


def _settable_section(section: str) -> bool:
    return any(section == s or section.startswith(s + ".") for s in _WRITABLE)


def _volatile(btf: Btf, type_id: int) -> bool:
    # C puts an array's qualifiers on its elements, so read them from the spelled type
    return "volatile" in btf.type_str(type_id).replace("[", " ").split()


def _fail(var: GlobalVar, what: str, hint: str):
    return UsageError(f"--set {var.name}: {what}", hint=hint)


def encode(btf: Btf, var: GlobalVar, text: str) -> bytes:
    """The bytes of ``text`` as ``var``'s type, or a UsageError that says what the type takes."""
    type_str = btf.type_str(var.type_id)
    if not _settable_section(var.section):
        kind = "a map" if var.section == ".maps" else f"an extern the kernel fills ({var.section})"
        raise _fail(var, f"{var.name} is {kind}, not a global the cell sets",
                    hint="--set writes const volatile globals and .data/.bss variables; " + _EXAMPLE)
    if var.section.startswith(".rodata") and not _volatile(btf, var.type_id):
        raise _fail(var, f"{var.name} is const but not volatile ({type_str}), so clang has folded its "
                         "value into the code and a new value would change nothing",
                    hint=f"declare it const volatile: const volatile ... {var.name} = ...;")
    rid = btf.resolve(var.type_id)
    kind = btf.kind(rid) if rid else 0
    size = btf.size(var.type_id)
    if kind == INT:
        return _integer(btf, var, rid, text, size, type_str)
    if kind in (ENUM, ENUM64):
        return _enum(btf, var, rid, text, type_str)
    if kind == FLOAT and size in (4, 8):
        try:
            return np.array(float(text), dtype=f"f{size}").tobytes()
        except ValueError:
            raise _fail(var, f"{text!r} is not a number ({type_str})", hint=f"e.g. --set {var.name}=0.5") from None
    if kind == ARRAY and btf.dtype(rid).kind == "S":
        return _chars(var, text, size, type_str)
    what = {PTR: "a pointer", ARRAY: "an array", STRUCT: "a struct", UNION: "a union"}.get(kind, "not a scalar")
    raise _fail(var, f"{var.name} is {what} ({type_str}); --set takes numbers, enums, bools and strings",
                hint="initialise it in the cell, or split it into scalar const volatile globals")


def _integer(btf: Btf, var: GlobalVar, rid: int, text: str, size: int, type_str: str) -> bytes:
    dt = btf.dtype(rid)
    if dt.kind == "b":
        low = text.lower()
        if low not in _TRUE + _FALSE:
            raise _fail(var, f"{text!r} is not a bool", hint=f"--set {var.name}=true or --set {var.name}=false")
        return bytes([low in _TRUE])
    signed = dt.kind == "i" or (dt.kind == "V" and bool((dt.metadata or {}).get("ebpf_magic.int128")))
    if size == 1 and btf.name(rid).endswith("char") and len(text) in (1, 3) and not text.isdigit():
        text = text.strip("'")
        if len(text) == 1 and text.isascii():
            return bytes([ord(text)])
    bits = 8 * size
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    value = _parse_int(text)
    if value is None:
        one_char = " or one character" if size == 1 else ""
        raise _fail(var, f"{text!r} is not a whole number ({type_str})",
                    hint=f"a value from {low} to {high} (decimal, or 0x hex){one_char}")
    if not low <= value <= high:
        raise _fail(var, f"{value} does not fit {type_str} ({'' if signed else 'un'}signed {bits}-bit)",
                    hint=f"a value from {low} to {high}")
    return value.to_bytes(size, sys.byteorder, signed=signed)


def _parse_int(text: str) -> int | None:
    for base in (0, 10):  # 0: 0x1f, 0o17, 0b101; 10: a decimal with leading zeros
        try:
            return int(text, base)
        except ValueError:
            continue
    return None


def _enum(btf: Btf, var: GlobalVar, rid: int, text: str, type_str: str) -> bytes:
    names = btf.enumerators(rid)
    by_name = {n: v for v, n in names.items()}
    dt = btf.dtype(rid)
    if text in by_name:
        value = by_name[text]
    else:
        value = _parse_int(text)
        if value is None:
            shown = ", ".join(list(by_name)[:8]) + (", ..." if len(by_name) > 8 else "")
            raise _fail(var, f"{text!r} is not an enumerator of {type_str}", hint=f"one of: {shown}, or a number")
    info = np.iinfo(dt.str.lstrip("<>|=")) if dt.kind in "iu" else None
    if info is None or not info.min <= value <= info.max:
        raise _fail(var, f"{value} does not fit {type_str}", hint="an enumerator name, or one of their values")
    return np.array(value, dtype=dt).tobytes()


def _chars(var: GlobalVar, text: str, size: int, type_str: str) -> bytes:
    data = text.encode()
    if len(data) >= size:
        raise _fail(var, f"{len(data)} bytes do not fit {type_str} with its terminating NUL",
                    hint=f"at most {size - 1} bytes, or make the array longer in the cell")
    return data.ljust(size, b"\0")


def set_globals(obj, btf: Btf, values: dict[str, str]) -> None:
    """Parse every ``--set`` value against its global's type, then write them into the data images."""
    if not values:
        return
    found = variables(btf)
    missing = [n for n in values if n not in found]
    if missing:
        settable = [v.name for v in found.values() if _settable_section(v.section)]
        raise UsageError(f"--set {', '.join(missing)}: no such global in the cell",
                         hint=f"its globals: {', '.join(settable)}" if settable else _EXAMPLE)
    encoded = {n: (found[n], encode(btf, found[n], text)) for n, text in values.items()}
    images = {}
    for m in obj.maps():
        for section in {v.section for v, _ in encoded.values()}:
            # libbpf names .rodata's map "<object>.rodata"; a custom ".data.x" keeps its own name
            if m.name == section or (m.name.endswith(section) and "." not in m.name[: -len(section)]):
                images[section] = obj.initial_value(m)
    for var, data in encoded.values():
        image = images.get(var.section)
        if image is None or var.offset + len(data) > len(image):
            raise _fail(var, f"libbpf has no writable image of {var.section}",
                        hint="move it to .data or .rodata: give it an initial value, or make it const volatile")
        ct.memmove(ct.addressof(image) + var.offset, data, len(data))
