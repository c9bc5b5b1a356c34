"""The committed chapters show their outputs when opened without running (`make notebooks` stores them)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

CHAPTERS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]-*.ipynb"))
DRAWS = re.compile(r"\bplt\.|\.plot\b|\.plot\.|\bsavefig\(")


def _code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_plot_cell_has_a_stored_image(path):
    plots = [c for c in _code_cells(path) if DRAWS.search("".join(c["source"]))]
    assert plots, f"{path.name} draws nothing"
    missing = [c.get("id") for c in plots
               if not any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]
    assert not missing, f"{path.name}: plot cells without a stored image: {missing}; run make notebooks"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_stored_outputs_hold_no_unexpected_error(path):
    wrong = [c.get("id") for c in _code_cells(path)
             if any(o.get("output_type") == "error" for o in c.get("outputs", []))
             and "raises-exception" not in c.get("metadata", {}).get("tags", [])]
    assert not wrong, f"{path.name}: cells stored with an error they do not expect: {wrong}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_code_cell_was_executed(path):
    cells = _code_cells(path)
    ran = [c for c in cells if c.get("execution_count")]
    assert len(ran) == len(cells), f"{path.name}: {len(cells) - len(ran)} code cells never executed; run make notebooks"
