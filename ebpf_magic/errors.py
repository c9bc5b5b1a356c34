"""The lab's exceptions.

Every failure a learner can meet is a real exception (so nbval and nbclient
mark the cell failed) that renders in a few lines through IPython's
``_render_traceback_`` hook: what failed, where in the cell, what to try.
"""
from __future__ import annotations

_RED, _BOLD, _DIM, _RESET = "\x1b[31m", "\x1b[1m", "\x1b[2m", "\x1b[0m"
# Lines of ``detail`` shown under the headline: a learner reads a few, a wall of text hides the cause.
MAX_DETAIL = 8


class BPFLabError(Exception):
    """Base class: ``what`` failed, ``where`` in the cell, ``hint`` on what to try.

    ``detail`` holds a few extra lines (a compiler diagnostic, the end of a
    verifier log) shown between the headline and the hint.
    """

    kind = "BPF error"

    def __init__(self, what: str, *, where: str | None = None,
                 hint: str | None = None, detail: str | None = None,
                 explanation: str | None = None, cause: str | None = None, variable: str | None = None):
        super().__init__(what)
        self.what = what
        self.where = where
        self.hint = hint
        self.detail = detail
        # From the failure catalogue (ebpf_magic/verifier_catalogue.py): the plain reason, the
        # entry's short id (e.g. "null_map_value") and the C name involved, where one was found.
        self.explanation = explanation
        self.cause = cause
        self.variable = variable

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def lines(self) -> list[str]:
        out = [f"{self.kind}: {self.what}"]
        if self.where:
            out.append(f"  at {self.where}")
        if self.explanation:
            out.append(f"  why: {self.explanation}")
        if self.detail:
            detail = self.detail.rstrip().splitlines()
            if len(detail) > MAX_DETAIL:
                detail = detail[:MAX_DETAIL - 1] + [f"... and {len(detail) - MAX_DETAIL + 1} more lines"]
            out.extend("  " + ln for ln in detail)
        if self.hint:
            out.append(f"  try: {self.hint}")
        return out

    def _render_traceback_(self) -> list[str]:
        head, *rest = self.lines()
        return [f"{_RED}{_BOLD}{head}{_RESET}"] + [
            f"{_DIM}{ln}{_RESET}" if ln.startswith("  ") and not ln.startswith(("  try:", "  why:")) else ln
            for ln in rest
        ]


class UnknownSectionError(BPFLabError, ValueError):
    kind = "Unknown SEC name"


class UsageError(BPFLabError, ValueError):
    """A magic's line or a method's argument is wrong; nothing was compiled or loaded."""

    kind = "Usage"


class CompileError(BPFLabError):
    kind = "Compile error"


class VerifierError(BPFLabError):
    kind = "Verifier rejected the program"


class AttachError(BPFLabError):
    kind = "Attach failed"


class NotRootError(BPFLabError, PermissionError):
    kind = "Not allowed"


class KernelRefusedError(BPFLabError):
    """The running kernel cannot run this program type (EPERM, missing CONFIG, no PMU)."""

    kind = "Not supported by this kernel"


class MapError(BPFLabError, KeyError):
    kind = "Map error"

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return BPFLabError.__str__(self)
