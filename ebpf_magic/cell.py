"""A ``%%bpf`` cell, read once: engine, sections, program functions, name and options.

The magic turns its line and the cell's text into one :class:`Cell`; every
check that needs no kernel happens here, before anything compiles or loads,
and both engines take the result as it is.
"""
from __future__ import annotations

import keyword
import shlex
from dataclasses import dataclass, field

from . import source
from .attach.base import Options
from .errors import BPFLabError, UsageError
from .sections import Section, resolve

ENGINES = ("bcc", "core")


@dataclass(frozen=True)
class Cell:
    text: str
    engine: str                            # "bcc" or "core"
    section: Section | None                # bcc: the program's SEC; core: None (each function has its own)
    sections: dict[str, Section]           # SEC("...") annotations in the text: function -> Section
    functions: tuple[str, ...]             # program functions found in the text (a guess BCC confirms)
    fn: str | None                         # bcc: the program function named by --fn or a SEC annotation
    name: str | None                       # the handle's name, a Python identifier; None: the function's
    options: Options = field(default_factory=Options)
    cflags: tuple[str, ...] = ()
    sets: dict[str, str] = field(default_factory=dict)     # core: const volatile globals, NAME -> VALUE
    event_type: str | None = None
    quiet: bool = False


def make(text: str, sec: str | None = None, *, engine: str | None = None, name: str | None = None,
         fn: str | None = None, options: Options | None = None, cflags=(), sets=None,
         event_type: str | None = None, quiet: bool = False) -> Cell:
    """Validate a cell and its options; raises a BPFLabError that says what to change."""
    if isinstance(text, (bytes, bytearray)):
        raise UsageError("the cell holds bytes, not C source", hint="pass the program's text as a str")
    if not isinstance(text, str):
        raise UsageError(f"the cell must be C source text, not {type(text).__name__}",
                         hint="write a BPF program under the %%bpf line")
    if sec is not None and (not isinstance(sec, str) or not sec.strip() or any(c.isspace() for c in sec.strip())):
        raise UsageError(f"{sec!r} is not a SEC name", hint="one word, e.g. %%bpf tracepoint/syscalls/sys_enter_getpid")
    if not text.strip():
        raise UsageError("the cell is empty", hint="write a BPF program under the %%bpf line")
    if "\0" in text or not text.isprintable() and _binary(text):
        raise UsageError("the cell holds binary data, not C source", hint="paste the program's C text")
    if engine is not None and engine not in ENGINES:
        raise UsageError(f"--engine {engine!r} is not an engine", hint="--engine bcc or --engine core")
    if name is not None:
        check_identifier(name, "-n/--name")
    if fn is not None:
        check_identifier(fn, "--fn", python=False)
    if event_type is not None:
        check_identifier(event_type, "--event-type", python=False)
    annotations = source.sec_annotations(text)
    sections = {f: resolve(s) for f, s in annotations.items()}
    functions = tuple(source.program_functions(text))
    engine = engine or ("core" if not sec and annotations else "bcc")
    options = options or Options()
    options.check()
    cflags = tuple(cflags)
    sets = parse_sets(sets)
    if engine == "core":
        if not sections:
            raise UsageError("a CO-RE cell needs SEC(\"...\") before each program function",
                             hint='e.g. SEC("tracepoint/syscalls/sys_enter_getpid") int f(void *ctx) {...}')
        if sec:
            raise UsageError("a CO-RE cell takes its SEC names from SEC(\"...\") in the cell",
                             hint="drop the SEC from the magic line, or use --engine bcc")
        if fn:
            raise UsageError("--fn picks the program of a BCC cell; a CO-RE cell loads all of its SEC programs",
                             hint="mark the others SEC(\"?...\") so libbpf does not load them")
        _check_options_apply(options, [s for s in sections.values() if s.autoload])
        return Cell(text, engine, None, sections, functions, None, name, options, cflags, sets, event_type, quiet)
    if sets:
        raise UsageError("--set writes globals of a CO-RE cell; a BCC cell has none",
                         hint="use -D through --cflags, e.g. --cflags=-DTARGET_PID=1234")
    if event_type is not None:
        raise UsageError("--event-type names the record struct of a CO-RE cell; BCC reads it from the code",
                         hint="for a BCC cell pass a ctypes Structure: h.events(name, event_type=Event)")
    section, fn = _bcc_section(sec, sections, fn)
    _check_options_apply(options, [section])
    guess = fn or (functions[0] if len(functions) == 1 else None)
    return Cell(text, engine, section, sections, functions, fn, name or guess, options, cflags, sets,
                event_type, quiet)


def probe_function(cell: Cell) -> str:
    """The program function of a BCC cell before compiling (USDT readers are generated per function)."""
    if cell.fn:
        return cell.fn
    if len(cell.functions) == 1:
        return cell.functions[0]
    raise UsageError("a usdt cell needs to say which function is the probe",
                     hint="add --fn NAME (found: " + (", ".join(cell.functions) or "none") + ")")


# Which families read which magic-line option (the attachers under attach/); any other cell would ignore it.
_OPTION_FAMILIES = {"pid": ("uprobe", "uretprobe", "usdt", "perf_event"), "event": ("perf_event",),
                    "freq": ("perf_event",), "period": ("perf_event",), "cpu": ("perf_event",),
                    "dev": ("xdp", "tc", "tcx", "socket"), "xdp_mode": ("xdp",), "direction": ("tc",),
                    "cgroup": ("cgroup", "sockops"), "map": ("sk_msg", "sk_skb", "sk_reuseport"),
                    "netns": ("sk_lookup", "flow_dissector", "sk_reuseport"), "sockets": ("sk_reuseport",),
                    "port": ("sk_reuseport",)}


def _check_options_apply(options: Options, sections) -> None:
    """An option no program of the cell reads would be silently ignored: refuse it instead."""
    families = {s.family for s in sections}
    for opt, users in _OPTION_FAMILIES.items():
        if getattr(options, opt) is not None and not families & set(users):
            raise UsageError(f"--{opt} applies to {', '.join(users)} programs, not to "
                             f"{', '.join(sorted(families)) or 'this cell'}",
                             hint=f"drop --{opt}, or use a SEC it applies to (e.g. %%bpf perf_event --{opt} ...)")


_WHITESPACE_AS_SPACE = str.maketrans("\n\t\r\f\v", "     ")


def _binary(text: str) -> bool:
    # one C-speed pass: a character loop in Python costs a new cell milliseconds
    return not text.translate(_WHITESPACE_AS_SPACE).isprintable()


def _bcc_section(sec: str | None, sections: dict[str, Section], fn: str | None) -> tuple[Section, str | None]:
    """The SEC from the magic line, else the one SEC("...") annotation of the cell (or --fn's)."""
    if sec:
        return resolve(sec), fn
    if fn and fn in sections:
        return sections[fn], fn
    if len(sections) == 1:
        (only_fn, only), = sections.items()
        return only, fn or only_fn
    if not sections:
        raise UsageError("the cell has no SEC",
                         hint="name it on the magic line: %%bpf tracepoint/syscalls/sys_enter_getpid")
    raise UsageError(f"the cell has several SEC annotations ({', '.join(sections)})",
                     hint="pick one with --fn NAME")


def check_identifier(value: str, what: str, python: bool = True) -> str:
    """A name the learner gave must be a C (and, for handles, Python) identifier."""
    if not value.isidentifier() or not value.isascii():
        raise UsageError(f"{what} {value!r} is not an identifier",
                         hint="letters, digits and _, not starting with a digit, e.g. -n opens")
    if python and keyword.iskeyword(value):
        raise UsageError(f"{what} {value!r} is a Python keyword", hint=f"pick another name, e.g. {value}_prog")
    return value


def parse_sets(items) -> dict[str, str]:
    """``--set NAME=VALUE`` items (or a dict) as NAME -> VALUE text; the value is checked against BTF later."""
    if isinstance(items, dict):
        items = [f"{k}={v}" for k, v in items.items()]
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--set {item!r} is not NAME=VALUE", hint="--set target_pid=1234")
        check_identifier(name, "--set", python=False)
        if name in out:
            raise UsageError(f"--set {name} is given twice", hint="give each global once")
        out[name] = value.strip()
    return out


def split_cflags(values) -> tuple[str, ...]:
    """Flags from every --cflags; IPython keeps the quotes of a quoted value, so split twice."""
    try:
        flags = [flag for v in values for part in shlex.split(v) for flag in shlex.split(part)]
    except ValueError as exc:
        raise UsageError(f"--cflags: {exc}", hint="quote the whole set: --cflags '-DN=4 -DM=2'") from None
    for flag in flags:
        if not flag.startswith("-"):
            raise UsageError(f"--cflags {flag!r} is not a compiler flag",
                             hint="flags start with '-', e.g. --cflags=-DN=4")
    return tuple(flags)


__all__ = ["Cell", "make", "parse_sets", "split_cflags", "check_identifier", "BPFLabError"]
