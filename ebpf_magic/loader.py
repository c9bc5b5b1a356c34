"""Build a cell from Python (tests, benchmarks, scripts): the magic's data path without IPython."""
from __future__ import annotations

from . import cell as cells


def run(cell: cells.Cell):
    """Compile, load and attach a parsed cell with its engine; returns an attached, unregistered handle."""
    if cell.engine == "core":
        from .core.build import build
    else:
        from .bcc_engine import build
    return build(cell)


def build(text: str, sec: str | None = None, **options):
    """``build(text, "tracepoint/syscalls/sys_enter_getpid", name=..., options=Options(...))``."""
    return run(cells.make(text, sec, **options))
