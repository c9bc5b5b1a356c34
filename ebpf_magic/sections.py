"""libbpf's SEC() names, as data.

A SEC name decides everything libbpf does with a program before the
verifier sees it: the program type, the expected attach type, whether BTF
must name a kernel function, whether it may sleep. libbpf keeps those rules
in one table (``section_defs`` in libbpf.c) plus one matching function;
this module is a copy of that table and that function, so the lab can
explain a name (and reject a typo) without compiling anything.

``SECTION_DEFS`` is libbpf 1.1's table, in libbpf's order, because the
first matching entry wins and the order is what makes e.g.
``sk_reuseport/migrate`` beat ``sk_reuseport``. The unit tests check every
entry against the installed libbpf.so.1 through ``libbpf_prog_type_by_name``.

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
from .uapi import AttachType, ProgType

if TYPE_CHECKING:
    import pandas as pd

# The libbpf release SECTION_DEFS was checked against. A SecDef's libbpf_min
# never goes below it: older releases are outside what the lab supports, so
# "1.1" there means "1.1 or earlier".
BASELINE_LIBBPF = "1.1"

# libbpf's SEC_* cookie bits, by name. SEC_ATTACHABLE_OPT is ATTACHABLE plus
# "drop the expected attach type if the kernel is too old to accept it";
# libbpf 1.1 has no SEC_USDT bit (usdt+ is SEC_NONE there).
FLAGS = frozenset({"attachable", "attachable_opt", "attach_btf", "sleepable", "xdp_frags"})

# The lab's attach families: one per way of attaching, so variants that only
# differ in flags (fentry.s, xdp.frags, raw_tp vs raw_tracepoint) share one.
FAMILIES = (
    "socket", "sk_reuseport", "kprobe", "kretprobe", "uprobe", "uretprobe", "kprobe_multi",
    "ksyscall", "kretsyscall", "usdt", "tc", "action", "tracepoint", "raw_tracepoint",
    "raw_tracepoint_w", "tp_btf", "fentry", "fexit", "fmod_ret", "freplace", "lsm", "lsm_cgroup",
    "iter", "syscall", "xdp", "perf_event", "lwt", "sockops", "sk_skb", "sk_msg", "lirc_mode2",
    "flow_dissector", "cgroup", "struct_ops", "sk_lookup",
)


def _vtuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@dataclass(frozen=True)
class SecDef:
    """One row of libbpf's ``section_defs``.

    ``sec`` is spelled as in libbpf: a trailing ``+`` accepts ``base`` alone
    or ``base/anything``; a trailing ``/`` requires something after it;
    anything else must match exactly. ``attach_type`` is None where libbpf
    writes 0 meaning "no expected attach type" (0 is also the value of
    CGROUP_INET_INGRESS, which only ``cgroup_skb/ingress`` really means).
    """

    sec: str
    prog_type: ProgType
    attach_type: AttachType | None
    flags: frozenset[str]
    family: str
    libbpf_min: str = BASELINE_LIBBPF

    def __post_init__(self) -> None:
        # A typo in the table would otherwise surface as a wrong attach much later.
        if not self.flags <= FLAGS:
            raise ValueError(f"{self.sec}: unknown flags {sorted(self.flags - FLAGS)}")
        if self.family not in FAMILIES:
            raise ValueError(f"{self.sec}: unknown family {self.family!r}")

    @property
    def kind(self) -> str:
        """"plus", "prefix" or "exact": how ``sec_def_matches`` treats this entry."""
        if self.sec.endswith("+"):
            return "plus"
        if self.sec.endswith("/"):
            return "prefix"
        return "exact"

    @property
    def base(self) -> str:
        return self.sec.rstrip("+/")

    @property
    def attachable(self) -> bool:
        """libbpf lets bpf_prog_attach()-style APIs use this expected attach type."""
        return bool(self.flags & {"attachable", "attachable_opt"})

    @property
    def attach_btf(self) -> bool:
        """The part after the prefix names a BTF type (kernel function, tracepoint, iterator)."""
        return "attach_btf" in self.flags

    @property
    def sleepable(self) -> bool:
        return "sleepable" in self.flags

    @property
    def frags(self) -> bool:
        """XDP program that accepts multi-buffer (fragmented) packets."""
        return "xdp_frags" in self.flags

    @property
    def retprobe(self) -> bool:
        """Fires on return (kretprobe*, uretprobe*, kretsyscall): kretprobe.multi shares kprobe_multi."""
        return self.base.split(".")[0] in ("kretprobe", "uretprobe", "kretsyscall")

    def needs_newer_than(self, version: str) -> bool:
        """True if a libbpf of ``version`` (e.g. "1.1") predates this entry."""
        return _vtuple(self.libbpf_min) > _vtuple(version)


def _d(sec: str, prog: ProgType, attach: AttachType | None, flags: str, family: str) -> SecDef:
    return SecDef(sec, prog, attach, frozenset(flags.split()), family)


P, A = ProgType, AttachType
_BTF, _BTF_S = "attach_btf", "attach_btf sleepable"

SECTION_DEFS: tuple[SecDef, ...] = (
    _d("socket", P.SOCKET_FILTER, None, "", "socket"),
    _d("sk_reuseport/migrate", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT_OR_MIGRATE, "attachable",
       "sk_reuseport"),
    _d("sk_reuseport", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT, "attachable", "sk_reuseport"),
    _d("kprobe+", P.KPROBE, None, "", "kprobe"),
    _d("uprobe+", P.KPROBE, None, "", "uprobe"),
    _d("uprobe.s+", P.KPROBE, None, "sleepable", "uprobe"),
    _d("kretprobe+", P.KPROBE, None, "", "kretprobe"),
    _d("uretprobe+", P.KPROBE, None, "", "uretprobe"),
    _d("uretprobe.s+", P.KPROBE, None, "sleepable", "uretprobe"),
    _d("kprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI, "", "kprobe_multi"),
    _d("kretprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI, "", "kprobe_multi"),
    _d("ksyscall+", P.KPROBE, None, "", "ksyscall"),
    _d("kretsyscall+", P.KPROBE, None, "", "kretsyscall"),
    _d("usdt+", P.KPROBE, None, "", "usdt"),
    _d("tc", P.SCHED_CLS, None, "", "tc"),
    _d("classifier", P.SCHED_CLS, None, "", "tc"),
    _d("action", P.SCHED_ACT, None, "", "action"),
    _d("tracepoint+", P.TRACEPOINT, None, "", "tracepoint"),
    _d("tp+", P.TRACEPOINT, None, "", "tracepoint"),
    _d("raw_tracepoint+", P.RAW_TRACEPOINT, None, "", "raw_tracepoint"),
    _d("raw_tp+", P.RAW_TRACEPOINT, None, "", "raw_tracepoint"),
    _d("raw_tracepoint.w+", P.RAW_TRACEPOINT_WRITABLE, None, "", "raw_tracepoint_w"),
    _d("raw_tp.w+", P.RAW_TRACEPOINT_WRITABLE, None, "", "raw_tracepoint_w"),
    _d("tp_btf+", P.TRACING, A.TRACE_RAW_TP, _BTF, "tp_btf"),
    _d("fentry+", P.TRACING, A.TRACE_FENTRY, _BTF, "fentry"),
    _d("fmod_ret+", P.TRACING, A.MODIFY_RETURN, _BTF, "fmod_ret"),
    _d("fexit+", P.TRACING, A.TRACE_FEXIT, _BTF, "fexit"),
    _d("fentry.s+", P.TRACING, A.TRACE_FENTRY, _BTF_S, "fentry"),
    _d("fmod_ret.s+", P.TRACING, A.MODIFY_RETURN, _BTF_S, "fmod_ret"),
    _d("fexit.s+", P.TRACING, A.TRACE_FEXIT, _BTF_S, "fexit"),
    _d("freplace+", P.EXT, None, _BTF, "freplace"),
    _d("lsm+", P.LSM, A.LSM_MAC, _BTF, "lsm"),
    _d("lsm.s+", P.LSM, A.LSM_MAC, _BTF_S, "lsm"),
    _d("lsm_cgroup+", P.LSM, A.LSM_CGROUP, _BTF, "lsm_cgroup"),
    _d("iter+", P.TRACING, A.TRACE_ITER, _BTF, "iter"),
    _d("iter.s+", P.TRACING, A.TRACE_ITER, _BTF_S, "iter"),
    _d("syscall", P.SYSCALL, None, "sleepable", "syscall"),
    _d("xdp.frags/devmap", P.XDP, A.XDP_DEVMAP, "xdp_frags", "xdp"),
    _d("xdp/devmap", P.XDP, A.XDP_DEVMAP, "attachable", "xdp"),
    _d("xdp.frags/cpumap", P.XDP, A.XDP_CPUMAP, "xdp_frags", "xdp"),
    _d("xdp/cpumap", P.XDP, A.XDP_CPUMAP, "attachable", "xdp"),
    _d("xdp.frags", P.XDP, A.XDP, "xdp_frags", "xdp"),
    _d("xdp", P.XDP, A.XDP, "attachable_opt", "xdp"),
    _d("perf_event", P.PERF_EVENT, None, "", "perf_event"),
    _d("lwt_in", P.LWT_IN, None, "", "lwt"),
    _d("lwt_out", P.LWT_OUT, None, "", "lwt"),
    _d("lwt_xmit", P.LWT_XMIT, None, "", "lwt"),
    _d("lwt_seg6local", P.LWT_SEG6LOCAL, None, "", "lwt"),
    _d("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS, "attachable_opt", "sockops"),
    _d("sk_skb/stream_parser", P.SK_SKB, A.SK_SKB_STREAM_PARSER, "attachable_opt", "sk_skb"),
    _d("sk_skb/stream_verdict", P.SK_SKB, A.SK_SKB_STREAM_VERDICT, "attachable_opt", "sk_skb"),
    _d("sk_skb", P.SK_SKB, None, "", "sk_skb"),
    _d("sk_msg", P.SK_MSG, A.SK_MSG_VERDICT, "attachable_opt", "sk_msg"),
    _d("lirc_mode2", P.LIRC_MODE2, A.LIRC_MODE2, "attachable_opt", "lirc_mode2"),
    _d("flow_dissector", P.FLOW_DISSECTOR, A.FLOW_DISSECTOR, "attachable_opt", "flow_dissector"),
    _d("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS, "attachable_opt", "cgroup"),
    _d("cgroup_skb/egress", P.CGROUP_SKB, A.CGROUP_INET_EGRESS, "attachable_opt", "cgroup"),
    _d("cgroup/skb", P.CGROUP_SKB, None, "", "cgroup"),
    _d("cgroup/sock_create", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, "attachable", "cgroup"),
    _d("cgroup/sock_release", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_RELEASE, "attachable", "cgroup"),
    _d("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, "attachable_opt", "cgroup"),
    _d("cgroup/post_bind4", P.CGROUP_SOCK, A.CGROUP_INET4_POST_BIND, "attachable", "cgroup"),
    _d("cgroup/post_bind6", P.CGROUP_SOCK, A.CGROUP_INET6_POST_BIND, "attachable", "cgroup"),
    _d("cgroup/bind4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND, "attachable", "cgroup"),
    _d("cgroup/bind6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_BIND, "attachable", "cgroup"),
    _d("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT, "attachable", "cgroup"),
    _d("cgroup/connect6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_CONNECT, "attachable", "cgroup"),
    _d("cgroup/sendmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_SENDMSG, "attachable", "cgroup"),
    _d("cgroup/sendmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG, "attachable", "cgroup"),
    _d("cgroup/recvmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG, "attachable", "cgroup"),
    _d("cgroup/recvmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_RECVMSG, "attachable", "cgroup"),
    _d("cgroup/getpeername4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETPEERNAME, "attachable", "cgroup"),
    _d("cgroup/getpeername6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETPEERNAME, "attachable", "cgroup"),
    _d("cgroup/getsockname4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETSOCKNAME, "attachable", "cgroup"),
    _d("cgroup/getsockname6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETSOCKNAME, "attachable", "cgroup"),
    _d("cgroup/sysctl", P.CGROUP_SYSCTL, A.CGROUP_SYSCTL, "attachable", "cgroup"),
    _d("cgroup/getsockopt", P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT, "attachable", "cgroup"),
    _d("cgroup/setsockopt", P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT, "attachable", "cgroup"),
    _d("cgroup/dev", P.CGROUP_DEVICE, A.CGROUP_DEVICE, "attachable_opt", "cgroup"),
    _d("struct_ops+", P.STRUCT_OPS, None, "", "struct_ops"),
    _d("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP, "attachable", "sk_lookup"),
)
del P, A


def sec_def_matches(sec_def: SecDef, name: str) -> bool:
    """libbpf's matching rule for one table entry (``name`` without a leading "?")."""
    sec = sec_def.sec
    if sec.endswith("/"):
        return name.startswith(sec)
    if sec.endswith("+"):
        base = sec[:-1]
        return name == base or name.startswith(base + "/")
    return name == sec


def find_sec_def(name: str) -> SecDef | None:
    """The entry libbpf would pick for ``name``: the first match in table order."""
    for sec_def in SECTION_DEFS:
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
    ksyscall, kretsyscall               syscall
    uprobe, uretprobe                   binary, symbol, offset; symbol is None
                                        for a bare address (``bin:0x1234``)
    usdt                                binary, provider, probe
    cgroup                              hook ("sock_create", "ingress", ...)
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
    pattern: str | None = None
    syscall: str | None = None
    binary: str | None = None
    symbol: str | None = None
    provider: str | None = None
    probe: str | None = None
    hook: str | None = None
    mode: str | None = None
    op: str | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, str | int]:
        """The parsed fields that are set, in declaration order (``problem`` excluded)."""
        return {k: v for k, v in self.__dict__.items() if v is not None and k != "problem"}

    def __bool__(self) -> bool:
        return bool(self.as_dict())


@dataclass(frozen=True)
class Section:
    """A resolved SEC name: libbpf's table entry plus the parsed target."""

    name: str          # without libbpf's leading "?"
    autoload: bool     # False for "?name": libbpf skips loading it unless asked
    sec_def: SecDef
    extras: str        # text after "base/", "" if none
    target: Target

    @property
    def prog_type(self) -> ProgType:
        return self.sec_def.prog_type

    @property
    def attach_type(self) -> AttachType | None:
        return self.sec_def.attach_type

    @property
    def family(self) -> str:
        return self.sec_def.family

    @property
    def sleepable(self) -> bool:
        return self.sec_def.sleepable

    @property
    def attach_btf(self) -> bool:
        return self.sec_def.attach_btf

    @property
    def attachable(self) -> bool:
        return self.sec_def.attachable

    @property
    def frags(self) -> bool:
        return self.sec_def.frags

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
        return row


def resolve(name: str) -> Section:
    """Resolve a SEC name the way libbpf does, or raise UnknownSectionError."""
    autoload = not name.startswith("?")
    bare = name if autoload else name[1:]
    sec_def = find_sec_def(bare)
    if sec_def is None:
        raise UnknownSectionError(f"SEC({name!r}) is not a section name libbpf {BASELINE_LIBBPF} knows",
                                  hint=_hint(bare))
    extras = bare[len(sec_def.base) + 1:]
    return Section(bare, autoload, sec_def, extras, _parse_target(sec_def, extras))


# --- targets ---------------------------------------------------------------

# libbpf reads kprobe/uprobe function names with the scanset [a-zA-Z0-9_.],
# so "func.isra.0" works but C++ or versioned names ("malloc@GLIBC") do not.
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
    if not colon or not binary:
        return Target(binary=binary or None, problem="expected <binary>:<symbol>[+offset]")
    address = _parse_int(spec)
    if address is not None:
        # A bare number is an offset in the file, no symbol lookup. libbpf 1.1's
        # own auto-attach would search for a symbol called "0x1234"; callers
        # pass this as bpf_program__attach_uprobe_opts(func_name=NULL, offset).
        return Target(binary=binary, symbol=None, offset=address)
    symbol, offset, problem = _func_offset(spec, "<symbol>")
    if problem is None and d.retprobe and offset:
        problem = "uretprobes fire on return: an offset after the symbol makes no sense there"
    return Target(binary=binary, symbol=symbol, offset=offset, problem=problem)


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


def _parse_target(sec_def: SecDef, extras: str) -> Target:
    # cgroup and xdp entries are exact names: the target is the entry itself.
    if sec_def.family == "cgroup":
        return Target(hook=sec_def.base.partition("/")[2])
    if sec_def.family == "xdp":
        return Target(mode=sec_def.base.partition("/")[2] or None)
    parser = _PARSERS.get(sec_def.family)
    if not extras or parser is None:
        return Target()
    return parser(sec_def, extras)


# --- suggestions -------------------------------------------------------------

_PLACEHOLDER = {
    "kprobe": "<function>", "kretprobe": "<function>", "fentry": "<function>", "fexit": "<function>",
    "fmod_ret": "<function>", "freplace": "<function>", "lsm": "<hook>", "lsm_cgroup": "<hook>",
    "uprobe": "<binary>:<symbol>", "uretprobe": "<binary>:<symbol>", "usdt": "<binary>:<provider>:<probe>",
    "kprobe_multi": "<pattern>", "ksyscall": "<syscall>", "kretsyscall": "<syscall>",
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
    return "ebpf_magic.sections.table_frame() lists every name libbpf accepts"


# --- display -----------------------------------------------------------------

def _attach_name(attach_type: AttachType | None) -> str | None:
    return None if attach_type is None else attach_type.name


def _flags_text(flags: frozenset[str]) -> str:
    return ", ".join(sorted(flags))


def table_frame() -> pd.DataFrame:
    """The whole table as a pandas DataFrame, in libbpf's (matching) order."""
    import pandas as pd  # pandas is heavy; only the notebook needs it

    columns = ["sec", "kind", "prog_type", "attach_type", "flags", "family"]
    rows = [
        [d.sec, d.kind, d.prog_type.name, _attach_name(d.attach_type), _flags_text(d.flags), d.family]
        for d in SECTION_DEFS
    ]
    return pd.DataFrame(rows, columns=columns)
