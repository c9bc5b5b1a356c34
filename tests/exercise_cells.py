"""The exercises as the chapters write them, read from the notebooks.

A chapter's exercise is a ``%%bpf ... -n HANDLE`` cell tagged ``exercise-starter``
(what the learner starts from), a ``%bpf_check NAME HANDLE`` cell, and further on
a collapsed ``%%bpf`` cell tagged ``exercise-solution`` with its own check.
Cells tagged ``exercise-setup`` (``net = %bpf_net``, ``cg = %bpf_cgroup``) run
before either. Wrong answers kept for the tests sit in
``tests/exercise_answers/NAME.*.wrong``: a whole ``%%bpf`` cell each.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ANSWERS = Path(__file__).resolve().parent / "exercise_answers"
_CHECK = re.compile(r"^\s*(?:\w+\s*=\s*|assert\s+)?%bpf_check\s+(\S+)\s+(\w+)", re.M)
_HANDLE = re.compile(r"(?:^|\s)(?:-n|--name)[ =](\w+)")


@dataclass
class ExerciseCells:
    name: str
    chapter: str
    handle: str
    requires: list[str]
    setup: list[str] = field(default_factory=list)
    starter: str | None = None
    solution: str | None = None

    @property
    def wrong(self) -> list[Path]:
        return sorted(ANSWERS.glob(f"{self.name}.*.wrong"))


def _source(cell) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def _handle_of(source: str) -> str | None:
    first = source.lstrip().splitlines()[0] if source.strip() else ""
    m = _HANDLE.search(first) if first.startswith("%%bpf") else None
    return m.group(1) if m else None


def chapter_exercises(path: Path) -> list[ExerciseCells]:
    nb = json.loads(path.read_text())
    requires = list(nb.get("metadata", {}).get("ebpf", {}).get("requires", []))
    found: dict[str, ExerciseCells] = {}
    setup: list[str] = []
    bpf_cells: list[tuple[str, str]] = []   # (tag, source) of tagged %%bpf cells so far
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src, tags = _source(cell), cell.get("metadata", {}).get("tags", [])
        if "exercise-setup" in tags:
            setup.append(src)
        for tag in ("exercise-starter", "exercise-solution"):
            if tag in tags:
                bpf_cells.append((tag, src))
        for name, handle in _CHECK.findall(src):
            ex = found.setdefault(name, ExerciseCells(name, path.stem, handle, requires, list(setup)))
            for tag, cell_src in reversed(bpf_cells):
                if _handle_of(cell_src) != handle:
                    continue
                if tag == "exercise-starter" and ex.starter is None:
                    ex.starter = cell_src
                if tag == "exercise-solution" and ex.solution is None:
                    ex.solution = cell_src
                break
    return list(found.values())


def chapters() -> list[Path]:
    return sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


def all_exercises() -> list[ExerciseCells]:
    return [ex for path in chapters() for ex in chapter_exercises(path)]
