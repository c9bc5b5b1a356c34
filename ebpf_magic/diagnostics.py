"""Compiler diagnostics and verifier logs, turned into the lab's errors with cell lines.

Both engines name the cell's file ``cell`` (BCC through a ``#line`` directive,
clang by the file name), so clang's ``cell:LINE:COL`` and the verifier's
``@ cell:LINE`` line info point into the cell.
"""
from __future__ import annotations

import errno
import re
from collections.abc import Callable

from . import libbpf
from .errors import BPFLabError, CompileError, NotRootError, VerifierError
from .explain import explain_compile, explain_verifier
from .source import CELL_FILE
from .verifier_catalogue import NOISE, TRAILER

_DIAG = re.compile(rf"^{CELL_FILE}:(\d+):(\d+): (?:fatal )?(error|warning): (.*)$")
_ANY_ERROR = re.compile(r"^(\S+?):(\d+):(\d+): (?:fatal )?error: (.*)$")


def _cell_line(cell: str, lineno: int) -> str:
    lines = cell.splitlines()
    return lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""


_SHOWN_WARNINGS = 5


def warnings_of(cell: str, printed: str) -> list[str]:
    """The compiler's warnings about the cell, a line each, the first few and a count of the rest."""
    found = [(int(m[1]), m[4]) for m in map(_DIAG.match, printed.splitlines()) if m and m[3] == "warning"]
    lines = [f"cell line {ln}: {msg}  [{_cell_line(cell, ln)}]" for ln, msg in found[:_SHOWN_WARNINGS]]
    if len(found) > _SHOWN_WARNINGS:
        lines.append(f"... and {len(found) - _SHOWN_WARNINGS} more warnings")
    return lines


def compile_error(cell: str, printed: str, exc: object, hint: str | None = None,
                  engine: str = "bcc") -> CompileError:
    """The error for a cell clang refused; ``engine`` says which dialect the cell was compiled as."""
    lines = printed.splitlines()
    errors = list(dict.fromkeys((int(m[1]), int(m[2]), m[4]) for m in map(_DIAG.match, lines)
                                if m and m[3] == "error"))
    explained = explain_compile(cell, [m for _, _, m in errors] or lines, engine)
    extra = {} if explained is None else dict(explanation=explained.text, cause=explained.cause,
                                              variable=explained.variable, hint=explained.fix)
    if errors:
        line, col, msg = errors[0]
        shown = 3 if explained else 6
        detail = [f"cell line {ln}:{c}: {m}" for ln, c, m in errors[1:shown]]
        if len(errors) > shown:
            detail.append(f"... and {len(errors) - shown} more errors")
        return CompileError(msg, where=f"cell line {line}: {_cell_line(cell, line)}", detail="\n".join(detail),
                            **{"hint": hint or "fix the C in the cell; BCC's dialect: map.lookup()/increment(), "
                                               "bpf_probe_read_*()", **extra})
    others = [m for m in map(_ANY_ERROR.match, lines) if m]
    if others:
        m = others[0]
        return CompileError(m[4], where=f"{m[1]}:{m[2]} (a header, not the cell)",
                            **{"hint": "a header the cell includes does not compile with this kernel's headers; "
                                       "check %bpf_features for the headers in use", **extra})
    tail = "\n".join(ln for ln in lines[-8:] if ln.strip()) or str(exc)
    return CompileError("BCC could not compile the cell", detail=tail,
                        hint="check that kernel headers are installed (%bpf_features)")


def load_error(fn: str, section, err: int, log: str, cell: str,
               cell_line_of: Callable[[int], int | None] = lambda n: n) -> BPFLabError:
    """The error for a failed program load: the kernel's refusal, privileges, or the verifier's log."""
    from .features import refusal_reason

    if err == errno.EPERM:
        reason = refusal_reason(section)
        if reason is not None:
            return reason
        return NotRootError(f"loading {fn} needs CAP_BPF and CAP_PERFMON (errno EPERM)",
                            hint="run JupyterLab as root: sudo make lab")
    lines = [ln for ln in log.splitlines() if ln.strip() and not ln.startswith(("In file included", " ", "libbpf:"))]
    verifier = [ln for ln in lines if not _ANY_ERROR.match(ln) and "warning" not in ln and not NOISE.search(ln)]
    tail_end = next((i for i in range(len(verifier) - 1, -1, -1)
                     if not verifier[i].startswith(TRAILER)), len(verifier) - 1)
    where, cell_line = None, None
    for ln in reversed(verifier[: tail_end + 1]):
        m = re.search(rf"@ {CELL_FILE}:(\d+)", ln)
        if m and int(m[1]) > 0:
            cell_line = cell_line_of(int(m[1]))
            if cell_line:
                where = f"cell line {cell_line}: {_cell_line(cell, cell_line)}"
            break

    def renumber(m: re.Match) -> str:
        n = cell_line_of(int(m[1]))
        return f"@ {CELL_FILE}:{n}" if n else m[0]

    explained = explain_verifier(verifier, err, cell, section, cell_line_of, cell_line)
    if explained is not None and explained.line:
        where = f"cell line {explained.line}: {_cell_line(cell, explained.line)}"
    what = verifier[tail_end] if verifier else f"{libbpf.strerror(err)} loading {fn}"
    if explained is not None and explained.cause == "too_large" and "too large" not in what:
        what = f"BPF program is too large ({libbpf.strerror(err)}: the log ran out before the verifier's last line)"
    # A learner reads the cause in the explanation; a few lines of the log show the verifier's view.
    shown = 3 if explained is not None else 5
    excerpt = [re.sub(rf"@ {CELL_FILE}:(\d+)", renumber, ln) for ln in verifier[max(0, tail_end - shown): tail_end]]
    hints = [ln[len("HINT: "):] for ln in verifier if ln.startswith("HINT: ")]
    if any("is not modifiable" in ln for ln in verifier):
        hints.insert(0, "fmod_ret attaches only to functions on the error-injection list "
                        "(/sys/kernel/debug/error_injection/list) and to security_* hooks")
    if explained is None:
        return VerifierError(
            what, where=where, detail="\n".join(excerpt),
            hint=hints[0] if hints else "bound every access the verifier complains about; "
                                        f"{section.family} programs get a {section.prog_type.name} context")
    return VerifierError(what, where=where, detail="\n".join(excerpt), hint=explained.fix,
                         explanation=explained.text, cause=explained.cause, variable=explained.variable)
