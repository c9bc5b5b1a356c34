"""Each chapter ends with an exercise that has a starter, a solution and a registered check."""
from __future__ import annotations

import json

import pytest

from tests.exercise_cells import chapter_exercises, chapters


@pytest.mark.parametrize("path", chapters(), ids=lambda p: p.stem)
def test_chapter_ends_with_a_checked_exercise(path):
    from ebpf_magic.exercises import registry

    exercises = chapter_exercises(path)
    assert exercises, f"{path.name} has no %bpf_check exercise"
    known = registry()
    for ex in exercises:
        assert ex.name in known, f"{path.name}: %bpf_check {ex.name} names no registered exercise"
        assert ex.starter and ex.solution, f"{path.name}: {ex.name} needs exercise-starter and exercise-solution cells"
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    last_check = max(i for i, c in enumerate(cells) if "%bpf_check" in "".join(c["source"]))
    assert last_check >= len(cells) - 3, f"{path.name}: the exercise is not at the chapter's end"
    solution_cells = [c for c in cells if "exercise-solution" in c.get("metadata", {}).get("tags", [])]
    assert all(c.get("metadata", {}).get("jupyter", {}).get("source_hidden") for c in solution_cells), \
        f"{path.name}: solution cells are collapsed (metadata.jupyter.source_hidden)"
