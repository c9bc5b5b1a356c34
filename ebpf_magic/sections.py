"""libbpf's SEC() names, as data.

A SEC name decides everything libbpf does with a program before the
verifier sees it: the program type, the expected attach type, whether BTF
must name a kernel function, whether it may sleep. libbpf keeps those rules
in one table (``section_defs`` in libbpf.c) plus one matching function;
section_defs.py copies that table (libbpf 1.4's, with the seed's 1.1 rows
marked) and this module copies the function, so the lab can explain a name
(and reject a typo) without compiling anything. The unit tests check every
entry against the installed libbpf.so.1 through ``libbpf_prog_type_by_name``
and ``libbpf_attach_type_by_name``.

On top of libbpf's table, ``resolve()`` splits the part after the prefix
into a :class:`Target` (function, tracepoint, binary/symbol...) the way
libbpf's auto-attach code reads it, so the attach code and error messages
need no string slicing of their own.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import UnknownSectionError
from .section_defs import (  # noqa: F401  (re-exported: the lab imports them from here)
    BASELINE_LIBBPF,
    FAMILIES,
    FLAGS,
    SECTION_DEFS,
    SEED_LIBBPF,
    SEED_SECTION_DEFS,
    SecDef,
)
from .uapi import AttachType

if TYPE_CHECKING:
    import pandas as pd


def sec_def_matches(sec_def: SecDef, name: str) -> bool:
    """libbpf's matching rule for one table entry (``name`` without a leading "?")."""
    sec = sec_def.sec
    if sec.endswith("/"):
        return name.startswith(sec)
    if sec.endswith("+"):
        base = sec[:-1]
        return name == base or name.startswith(base + "/")
    return name == sec


def find_sec_def(name: str, table: tuple[SecDef, ...] = SECTION_DEFS) -> SecDef | None:
    """The entry libbpf would pick for ``name``: the first match in table order.

    ``table=SEED_SECTION_DEFS`` answers as the seed's libbpf 1.1 would.
    """
    for sec_def in table:
        if sec_def_matches(sec_def, name):
            return sec_def
    return None


@dataclass(frozen=True)
class Target:
    """What the part of a SEC name after its prefix points at.

    Which fields are set depends on the family; the rest stay None:

    ==================================  =====================================
    tracepoint (tp/, tracepoint/)       category, event
    raw_tracepoint(_w), tp_btf, iter    event
    fentry, fexit, fmod_ret, freplace,
    lsm, lsm_cgroup                     function
    kprobe, kretprobe                   function, offset (``func+0x10``)
    kprobe_multi                        pattern (glob)
    uprobe_multi                        binary, pattern (glob over the
                                        binary's symbols)
    ksyscall, kretsyscall               syscall
    uprobe, uretprobe                   binary, symbol, offset; symbol is None
                                        for a bare address (``bin:0x1234``)
    usdt                                binary, provider, probe
    cgroup                              hook ("sock_create", "ingress", ...)
    tcx                                 direction ("ingress", "egress")
    netkit                              side ("primary", "peer")
    xdp                                 mode ("devmap", "cpumap"; None: plain)
    struct_ops                          op
    ==================================  =====================================

    A name with nothing after its prefix (``SEC("kprobe")``) gives an empty
    target: valid for libbpf, but nothing to attach to automatically.
    ``problem`` says why text after the prefix could not be read (libbpf
    would refuse to auto-attach it); the name itself is still valid.
    """

    category: str | None = None
    event: str | None = None
    function: str | None = None
    offset: int | None = None
    syscall: str | None = None
    binary: str | None = None
    symbol: str | None = None
    pattern: str | None = None
    provider: str | None = None
    probe: str | None = None
    hook: str | None = None
    direction: str | None = None
    side: str | None = None
    mode: str | None = None
    op: str | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, str | int]:
        """The parsed fields that are set, in declaration order (``problem`` excluded)."""
        return {k: v for k, v in self.__dict__.items() if v is not None and k != "problem"}

    def __bool__(self) -> bool:
        return bool(self.as_dict())


_FROM_SEC_DEF = frozenset({"prog_type", "attach_type", "family", "sleepable", "attach_btf", "attachable",
                           "frags", "note"})


@dataclass(frozen=True)
class Section:
    """A resolved SEC name: libbpf's table entry plus the parsed target."""

    name: str          # without libbpf's leading "?"
    autoload: bool     # False for "?name": libbpf skips loading it unless asked
    sec_def: SecDef
    extras: str        # text after "base/", "" if none
    target: Target

    # Everything a row of the table says is also the section's: section.prog_type, .family, ...
    def __getattr__(self, name: str):
        if name in _FROM_SEC_DEF:
            return getattr(self.sec_def, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def as_row(self) -> dict[str, object]:
        """One flat dict, e.g. for ``pandas.DataFrame([section.as_row()])``."""
        row: dict[str, object] = {
            "name": self.name,
            "sec_def": self.sec_def.sec,
            "prog_type": self.prog_type.name,
            "attach_type": _attach_name(self.attach_type),
            "family": self.family,
            "autoload": self.autoload,
            "flags": _flags_text(self.sec_def.flags),
            "extras": self.extras,
        }
        row.update(self.target.as_dict())
        if self.target.problem:
            row["problem"] = self.target.problem
        if self.sec_def.needs_newer_than(SEED_LIBBPF):
            row["libbpf_min"] = self.sec_def.libbpf_min
        if self.note:
            row["note"] = self.note
        return row


def resolve(name: str) -> Section:
    """Resolve a SEC name the way libbpf does, or raise UnknownSectionError."""
    autoload = not name.startswith("?")
    bare = name if autoload else name[1:]
    sec_def = find_sec_def(bare)
    if sec_def is None:
        raise UnknownSectionError(f"SEC({name!r}) is not a section name libbpf {BASELINE_LIBBPF} "
                                  "(the release the lab follows) knows",
                                  hint=_hint(bare))
    extras = bare[len(sec_def.base) + 1:]
    return Section(bare, autoload, sec_def, extras, _parse_target(sec_def, extras))


# --- targets ---------------------------------------------------------------

# libbpf (1.1 and 1.4) reads kprobe function names with the scanset
# [a-zA-Z0-9_.], so "func.isra.0" works; uprobe symbols are read whole since 1.3.
_FUNC_OFF = re.compile(r"([A-Za-z0-9_.]+)(?:\+(.*))?")


def _parse_int(text: str) -> int | None:
    """Non-negative integer as strtol(base 0) reads it: 0x.. hex, 0.. octal, else decimal."""
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", text):
        return int(text, 16)
    if re.fullmatch(r"0[0-7]*", text):
        return int(text, 8)
    if re.fullmatch(r"[1-9][0-9]*", text):
        return int(text)
    return None


def _func_offset(spec: str, what: str) -> tuple[str | None, int | None, str | None]:
    """(function, offset, problem) from "func" or "func+OFF"."""
    m = _FUNC_OFF.fullmatch(spec)
    if not m:
        return None, None, f"expected {what}[+offset] (letters, digits, '_' and '.'), got {spec!r}"
    func, off_text = m.groups()
    if off_text is None:
        return func, 0, None
    offset = _parse_int(off_text)
    if offset is None:
        return func, None, f"offset {off_text!r} is not a number (decimal or 0x hex)"
    return func, offset, None


def _kprobe(d: SecDef, extras: str) -> Target:
    func, offset, problem = _func_offset(extras, "<function>")
    if problem is None and d.retprobe and offset:
        problem = "kretprobes fire on return: an offset makes no sense there"
    return Target(function=func, offset=offset, problem=problem)


def _uprobe(d: SecDef, extras: str) -> Target:
    # The binary runs up to the first ':' (libbpf's %[^:]), so absolute
    # paths work: "uprobe//usr/lib/x86_64-linux-gnu/libc.so.6:malloc".
    binary, colon, spec = extras.partition(":")
    if not colon or not binary or not spec:
        return Target(binary=binary or None, problem="expected <binary>:<symbol>[+offset]")
    address = _parse_int(spec)
    if address is not None:
        # A bare number is an offset in the file, no symbol lookup. libbpf's
        # own auto-attach would search for a symbol called "0x1234"; callers
        # pass this as bpf_program__attach_uprobe_opts(func_name=NULL, offset).
        return Target(binary=binary, symbol=None, offset=address)
    # libbpf 1.3+ takes the rest as the symbol (so "malloc@GLIBC_2.2.5" and
    # C++ names work) and splits off a "+offset" only at its very end.
    symbol, plus, off_text = spec.rpartition("+")
    if not plus:
        return Target(binary=binary, symbol=spec, offset=0)
    offset = _parse_int(off_text)
    if offset is None:
        # libbpf would look up a symbol literally called "malloc+zz" and fail.
        return Target(binary=binary, symbol=spec, problem=f"offset {off_text!r} is not a number "
                      "(decimal or 0x hex)")
    if not symbol:
        return Target(binary=binary, problem="expected <binary>:<symbol>[+offset], got no symbol")
    if d.retprobe and offset:
        return Target(binary=binary, symbol=symbol, offset=offset,
                      problem="uretprobes fire on return: an offset after the symbol makes no sense there")
    return Target(binary=binary, symbol=symbol, offset=offset)


def _uprobe_multi(_d: SecDef, extras: str) -> Target:
    # libbpf reads "%[^:]:%[^\n]": the binary, then a glob over its symbols.
    binary, colon, pattern = extras.partition(":")
    if not colon or not binary or not pattern:
        return Target(binary=binary or None, problem="expected <binary>:<pattern>")
    return Target(binary=binary, pattern=pattern)


def _usdt(_d: SecDef, extras: str) -> Target:
    parts = extras.split(":")
    if len(parts) != 3 or not all(parts):
        return Target(problem="expected usdt/<binary>:<provider>:<probe>")
    binary, provider, probe = parts
    return Target(binary=binary, provider=provider, probe=probe)


def _tracepoint(_d: SecDef, extras: str) -> Target:
    category, _, event = extras.partition("/")
    if not category or not event:
        return Target(category=category or None, problem="expected tp/<category>/<event>")
    return Target(category=category, event=event)


_PARSERS = {
    "kprobe": _kprobe,
    "kretprobe": _kprobe,
    "uprobe": _uprobe,
    "uretprobe": _uprobe,
    "uprobe_multi": _uprobe_multi,
    "usdt": _usdt,
    "tracepoint": _tracepoint,
    "kprobe_multi": lambda _d, x: Target(pattern=x),
    "ksyscall": lambda _d, x: Target(syscall=x),
    "kretsyscall": lambda _d, x: Target(syscall=x),
    "struct_ops": lambda _d, x: Target(op=x),
    **{fam: (lambda _d, x: Target(event=x))
       for fam in ("raw_tracepoint", "raw_tracepoint_w", "tp_btf", "iter")},
    **{fam: (lambda _d, x: Target(function=x))
       for fam in ("fentry", "fexit", "fmod_ret", "freplace", "lsm", "lsm_cgroup")},
}


# Families whose entries are exact names: the target is the entry itself
# (the part after "/", None for a bare "xdp").
_ROW_FIELD = {"cgroup": "hook", "xdp": "mode", "tcx": "direction", "netkit": "side"}


def _parse_target(sec_def: SecDef, extras: str) -> Target:
    field = _ROW_FIELD.get(sec_def.family)
    if field:
        return Target(**{field: sec_def.base.partition("/")[2] or None})
    parser = _PARSERS.get(sec_def.family)
    if not extras or parser is None:
        return Target()
    return parser(sec_def, extras)


# --- suggestions -------------------------------------------------------------

_PLACEHOLDER = {
    "kprobe": "<function>", "kretprobe": "<function>", "fentry": "<function>", "fexit": "<function>",
    "fmod_ret": "<function>", "freplace": "<function>", "lsm": "<hook>", "lsm_cgroup": "<hook>",
    "uprobe": "<binary>:<symbol>", "uretprobe": "<binary>:<symbol>", "usdt": "<binary>:<provider>:<probe>",
    "kprobe_multi": "<pattern>", "uprobe_multi": "<binary>:<pattern>", "ksyscall": "<syscall>", "kretsyscall": "<syscall>",
    "tracepoint": "<category>/<event>", "raw_tracepoint": "<event>", "raw_tracepoint_w": "<event>",
    "tp_btf": "<event>", "iter": "<iterator>", "struct_ops": "<op>",
}


def _template(sec_def: SecDef) -> str:
    """How to write a name for this entry, e.g. "kprobe/<function>"."""
    if sec_def.kind == "exact":
        return sec_def.sec
    return f"{sec_def.base}/{_PLACEHOLDER.get(sec_def.family, '<name>')}"


def suggestions(name: str, n: int = 3) -> list[str]:
    """Up to ``n`` valid name templates closest to ``name``, best first."""
    head = name.partition("/")[0]
    scored: dict[str, float] = {}
    for sec_def in SECTION_DEFS:
        base = sec_def.base
        score = difflib.SequenceMatcher(None, name, base).ratio()
        if sec_def.kind != "exact":
            # "kprobex/do_sys_open": judge the prefix, not the function name.
            score = max(score, difflib.SequenceMatcher(None, head, base).ratio())
        elif "/" not in name and "/" in base:
            # A bare "tcx" or "netkit": offer the entries it is the prefix of.
            score = max(score, difflib.SequenceMatcher(None, name, base.partition("/")[0]).ratio())
        tpl = _template(sec_def)
        scored[tpl] = max(score, scored.get(tpl, 0.0))
    best = sorted((tpl for tpl, s in scored.items() if s >= 0.6), key=lambda t: -scored[t])
    return best[:n]


def _hint(name: str) -> str:
    cleaned = name.strip().strip("'\"").strip()
    if cleaned != name and find_sec_def(cleaned.lstrip("?")):
        return f"drop the quotes/spaces: {cleaned}"
    close = suggestions(name)
    if close:
        return "did you mean " + ", ".join(close) + "?"
    return f"ebpf_magic.sections.table_frame() lists every name libbpf {BASELINE_LIBBPF} accepts"


# --- display -----------------------------------------------------------------

def _attach_name(attach_type: AttachType | None) -> str | None:
    return None if attach_type is None else attach_type.name


def _flags_text(flags: frozenset[str]) -> str:
    return ", ".join(sorted(flags))


_TABLE_COLUMNS = ["sec", "kind", "prog_type", "attach_type", "flags", "family",
                  "in_seed", "libbpf_min", "note"]


def _frame(table: tuple[SecDef, ...]) -> pd.DataFrame:
    import pandas as pd  # pandas is heavy; only the notebook needs it

    rows = [
        [d.sec, d.kind, d.prog_type.name, _attach_name(d.attach_type), _flags_text(d.flags), d.family,
         d.in_seed, d.libbpf_min, d.note]
        for d in table
    ]
    return pd.DataFrame(rows, columns=_TABLE_COLUMNS)


def table_frame() -> pd.DataFrame:
    """libbpf 1.4's whole table as a DataFrame, in libbpf's (matching) order.

    ``in_seed`` marks the seed's libbpf 1.1 rows, ``libbpf_min`` says since
    when a row exists and ``note`` how a name's meaning changed since 1.1.
    """
    return _frame(SECTION_DEFS)


def seed_table_frame() -> pd.DataFrame:
    """The seed's libbpf 1.1 table, same columns (no notes: they describe later changes)."""
    return _frame(SEED_SECTION_DEFS)
