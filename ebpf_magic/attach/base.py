"""What every family's attacher takes and gives back."""
from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import AttachError, BPFLabError


@dataclass
class Options:
    """The magic-line options that attachers read (names as in ``%%bpf?``)."""

    pid: int | None = None
    event: str | None = None
    freq: int | None = None
    period: int | None = None
    cpu: int | None = None


@dataclass
class Request:
    module: object          # bcc_engine.Module
    fn: str                 # the program function
    fd: int                 # its loaded program fd
    section: object         # sections.Section
    options: Options = field(default_factory=Options)

    @property
    def bpf(self):
        return self.module.bpf


@dataclass
class Attachment:
    """One attach point; ``detach()`` is idempotent."""

    kind: str
    point: str
    _detach: Callable[[], None] | None = None
    fd: int | None = None   # the link fd, for links the lab reads from (iterators)

    def detach(self) -> None:
        fn, self._detach = self._detach, None
        if fn is not None:
            fn()

    @property
    def attached(self) -> bool:
        return self._detach is not None

    def __str__(self) -> str:
        return f"{self.kind} {self.point}"


def fd_link(kind: str, point: str, link_fd: int) -> Attachment:
    return Attachment(kind, point, lambda: os.close(link_fd), fd=link_fd)


def bcc_call(what: str, call: Callable[[], object], *, hint: str, close: list[str] | None = None):
    """Run a BCC attach call; BCC raises bare Exceptions and prints to fd 2."""
    from ..fdcapture import stderr_fd

    with stderr_fd() as cap:
        try:
            return call()
        except BPFLabError:
            raise
        except Exception as exc:
            err = exc
    printed = " ".join(ln.strip() for ln in cap.text.splitlines() if ln.strip())[:300]
    detail = f"{err}" + (f"\n{printed}" if printed else "")
    if close:
        hint = f"{hint}; close matches: {', '.join(close)}"
    raise AttachError(what, detail=detail, hint=hint) from None


def need(req: Request, value, what: str, example: str):
    if value in (None, ""):
        raise AttachError(f"{req.section.name} does not say {what}",
                          hint=f"write it in the SEC name, e.g. %%bpf {example}")
    return value


def close_matches(word: str, choices, n: int = 3) -> list[str]:
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)
