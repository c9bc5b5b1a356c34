"""Match a verifier log or clang's diagnostics against the catalogue and name the C involved.

One matcher for both engines: BCC and libbpf (CO-RE) loads hand their
verifier log here through :func:`ebpf_magic.diagnostics.load_error`, and
both compilers' errors through ``compile_error``. The C name comes from the
failing cell line (BTF line info maps the instruction to it) read with the
register and helper the verifier names.
"""
from __future__ import annotations

import errno
import re
import string
from collections.abc import Callable
from dataclasses import dataclass

from .source import CELL_FILE
from .verifier_catalogue import COMPILE, CORE_ONLY, TOO_LARGE, VERIFIER, Entry


@dataclass(frozen=True)
class Explanation:
    cause: str
    text: str
    fix: str
    variable: str | None = None
    line: int | None = None     # a better cell line than the log's, where one is known


_INSN = re.compile(r"^(\d+): \(([0-9a-f]{2})\)")
_CALL = re.compile(r"call (\w+)#(\d+)")
_LINE_INFO = re.compile(rf"@ {CELL_FILE}:(\d+)")
_STORE = re.compile(r"^\d+: \([0-9a-f]{2}\) \*\(\w+ \*\)\(r\d+ [+-]\d+\) =")
_ACQUIRE = re.compile(r"(\w+)\s*=\s*(?:\([^()]*\)\s*)?[^;]*?(?:\.lookup\w*|\bbpf_map_lookup_elem|"
                      r"\bbpf_ringbuf_reserve|\bbpf_sk_lookup_\w+|\bbpf_skc_lookup_\w+)\s*\(")
_KEYWORDS = {"return", "sizeof", "if", "while", "for", "struct", "void", "char", "int", "long", "unsigned",
             "const", "volatile", "u8", "u16", "u32", "u64", "s32", "s64", "__u32", "__u64"}

# Fields each context may read, after the kernel's *_is_valid_access() rules.
CTX_FIELDS = {
    "SOCKET_FILTER": "len, pkt_type, mark, queue_mapping, protocol, vlan_present, vlan_tci, vlan_proto, "
                     "priority, ingress_ifindex, ifindex, hash, cb[0..4], napi_id (no data/data_end: "
                     "read bytes with bpf_skb_load_bytes())",
    "XDP": "data, data_end, data_meta, ingress_ifindex, rx_queue_index (egress_ifindex in devmap programs)",
    "SCHED_CLS": "data, data_end, data_meta, len, mark, priority, protocol, ifindex, tc_index, tc_classid, "
                 "hash, cb[0..4], vlan_tci, tstamp",
    "CGROUP_SKB": "data, data_end, len, protocol, mark, priority, ifindex, family, remote_ip4, local_ip4, "
                  "remote_port, local_port",
    "PERF_EVENT": "regs, sample_period, addr (read only)",
    "RAW_TRACEPOINT": "args[0..n-1], the tracepoint's arguments (read only)",
    "TRACING": "the typed arguments BPF_PROG() names (read only)",
}
CTX_FIELDS["SCHED_ACT"] = CTX_FIELDS["SCHED_CLS"]


def _tracepoint_fields(section) -> str:
    t = section.target
    for root in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        try:
            with open(f"{root}/events/{t.category}/{t.event}/format") as f:
                names = re.findall(r"field:[^;]*?(\w+)(?:\[\w*\])?;", f.read())
        except (OSError, TypeError):
            continue
        fields = [n for n in names if not n.startswith("common_")]
        return f"{', '.join(fields)} (the event's record, read only)" if fields else \
            "the event's record fields (read only)"
    return "the event's record fields, as listed in its tracefs format file (read only)"


def allowed_fields(section) -> str:
    name = section.prog_type.name
    if name == "TRACEPOINT":
        return _tracepoint_fields(section)
    return CTX_FIELDS.get(name, f"the fields of the {name.lower()} context (see its struct in vmlinux.h)")


# --- reading the log ------------------------------------------------------------------


@dataclass
class _Log:
    text: str
    insn_line: dict[int, int]   # instruction number -> cell line
    calls: dict[int, str]       # instruction number -> helper called there
    last_insn: str              # the instruction the verifier stopped at
    last_call: str | None


def _read_log(lines: list[str], cell_line_of: Callable[[int], int | None]) -> _Log:
    insn_line, calls, line, last_insn, last_call = {}, {}, None, "", None
    for ln in lines:
        info = _LINE_INFO.search(ln)
        if info and int(info[1]) > 0:
            line = cell_line_of(int(info[1]))
        m = _INSN.match(ln)
        if m:
            n = int(m[1])
            last_insn = ln
            if line:
                insn_line[n] = line
            c = _CALL.search(ln)
            if c and m[2] == "85":
                calls[n] = c[1]
                last_call = c[1]
    return _Log("\n".join(lines), insn_line, calls, last_insn, last_call)


# --- naming the C involved ------------------------------------------------------------------


def _words(pattern: str, text: str) -> list[str]:
    return [w for w in re.findall(pattern, text) if w and w not in _KEYWORDS]


def _derefs(line: str) -> list[str]:
    return (_words(r"([A-Za-z_]\w*)\s*->", line) + _words(r"(?:^|[=(,;!&|+\-]|return)\s*\*\s*\(?([A-Za-z_]\w*)",
                                                           line)
            + _words(r"([A-Za-z_]\w*)\s*\[", line))


def _call_args(line: str, helper: str | None) -> list[str]:
    if not helper or helper not in line:
        return []
    rest, depth, arg, args = line.split(helper, 1)[1].lstrip()[1:], 0, "", []
    for ch in rest:
        if ch == "," and depth == 0:
            args.append(arg.strip())
            arg = ""
            continue
        if ch == ")" and depth == 0:
            args.append(arg.strip())
            break
        depth += (ch == "(") - (ch == ")")
        arg += ch
    return args


def _variable(entry: Entry, m: re.Match, line: str, cell: str, helper: str | None) -> str | None:
    subject = entry.subject
    if not line or not subject:
        return None
    if subject == "lookup":
        acquired = [v for v in _ACQUIRE.findall(cell)]
        in_line = [v for v in acquired if re.search(rf"\b{re.escape(v)}\b", line)]
        return (in_line or _derefs(line) or acquired or [None])[0]
    if subject == "deref":
        return (_derefs(line) or [None])[0]
    if subject == "field":
        f = re.search(r"([A-Za-z_]\w*)\s*->\s*(\w+)", line)
        return f"{f[1]}->{f[2]}" if f else None
    if subject == "addr":
        return (_words(r"&\s*([A-Za-z_]\w*)", line) or _derefs(line) or [None])[0]
    if subject == "alloc":
        a = re.search(r"([A-Za-z_]\w*)\s*=(?!=)", line)
        return a[1] if a else None
    # index: a helper's argument the register names, an array subscript, or an added offset
    reg = m.groupdict().get("reg")
    args = _call_args(line, helper)
    if reg and args and 0 < int(reg) <= len(args):
        return args[int(reg) - 1].lstrip("&").strip() or None
    found = _words(r"\[\s*([A-Za-z_]\w*)", line) or _words(r"[+\-]\s*([A-Za-z_]\w*)\b(?!\s*\()", line)
    return found[0] if found else None


_UNNAMED = {"index": "the index", "field": "the field", "alloc": "the reference", "addr": "the variable"}


class _Fill(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _render(entry: Entry, values: dict) -> tuple[str, str]:
    fmt = string.Formatter()
    return fmt.vformat(entry.explanation, (), values), fmt.vformat(entry.fix, (), values)


def explain_verifier(lines: list[str], err: int, cell: str, section,
                     cell_line_of: Callable[[int], int | None] = lambda n: n,
                     failing_line: int | None = None) -> Explanation | None:
    """The catalogue's entry for a verifier log (its lines, noise removed), with the C name filled in."""
    log = _read_log(lines, cell_line_of)
    cell_lines = cell.splitlines()

    def text_of(n: int | None) -> str:
        return cell_lines[n - 1].strip() if n and 0 < n <= len(cell_lines) else ""

    for entry in VERIFIER:
        m = entry.pattern.search(log.text)
        if m is None:
            continue
        helper, line = log.last_call, text_of(failing_line)
        if entry.subject == "alloc":
            insn = int(m["insn"])
            helper, line = log.calls.get(insn), text_of(log.insn_line.get(insn))
        if entry.helper and not re.search(entry.helper, helper or ""):
            continue
        better = _field_line(m, cell_lines, failing_line)
        if better:
            failing_line, line = better, text_of(better)
        found = _explained(entry, m, line, cell, helper, section, log)
        return Explanation(found.cause, found.text, found.fix, found.variable, better) if better else found
    if err == errno.E2BIG:
        return _explained(TOO_LARGE, re.match("", ""), "", cell, None, section, log)
    return None


def _field_line(m: re.Match, cell_lines: list[str], failing_line: int | None) -> int | None:
    """The cell line that names the field a CO-RE relocation failed on, when the log's line does not.

    The log's last line annotation is the one before the poisoned instruction,
    often the statement before the read.
    """
    field = m.groupdict().get("field")
    if not field:
        return None
    # an access (p->field, BPF_CORE_READ(p, field), a.field), not the field's declaration
    used = re.compile(rf"(?:->|\.|,)\s*{re.escape(field)}\b")
    names = [i for i, text in enumerate(cell_lines, 1) if used.search(text)]
    start = failing_line or 0
    if not names or start in names:
        return None
    return next((i for i in names if i > start), names[-1])


def _explained(entry: Entry, m: re.Match, line: str, cell: str, helper: str | None, section,
               log: _Log) -> Explanation:
    groups = m.groupdict()
    var = _variable(entry, m, line, cell, helper) or (
        f"{groups['type']}.{groups['field']}" if groups.get("field") else groups.get("name"))
    values = _Fill({k: v for k, v in m.groupdict().items() if v is not None})
    values.update(var=var or _UNNAMED.get(entry.subject, "the pointer"), helper=helper or "the helper",
                  prog_type=section.prog_type.name.lower())
    if entry.cause == "ctx_access":
        values["fields"] = allowed_fields(section)
        values["rw"] = "write" if _STORE.match(log.last_insn) else "read"
    if "map_type" in values:
        from .uapi import MapType
        try:
            values["map_type_name"] = MapType(int(values["map_type"])).name.lower()
        except ValueError:
            values["map_type_name"] = f"type {values['map_type']}"
    text, fix = _render(entry, values)
    return Explanation(entry.cause, text, fix, var)


# --- clang ------------------------------------------------------------------------------------


def explain_compile(cell: str, messages: list[str], engine: str | None) -> Explanation | None:
    """The catalogue's entry for clang's error messages about a cell that did not compile."""
    first = "\n".join(messages)
    for entry in COMPILE:
        if entry.cause == "bcc_syntax_in_core" and engine == "core" or \
                entry.cause == "core_syntax_in_bcc" and engine == "bcc":
            found = entry.pattern.search(_code_only(cell))
            if found:
                values = _Fill(found=found[0].strip().rstrip("(").strip())
                text, fix = _render(entry, values)
                return Explanation(entry.cause, text, fix, values["found"])
            continue
        if entry.cause in ("bcc_syntax_in_core", "core_syntax_in_bcc"):
            continue
        m = entry.pattern.search(first)
        if m:
            values = _Fill({k: v for k, v in m.groupdict().items() if v is not None})
            text, fix = _render(entry, values)
            return Explanation(entry.cause, text, fix, values.get("name") or values.get("header"))
    return None


def _code_only(cell: str) -> str:
    """The cell without comments, so advice in a comment is not taken for code."""
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", cell, flags=re.S)


def looks_like_core(cell: str) -> bool:
    return bool(CORE_ONLY.search(_code_only(cell)))
