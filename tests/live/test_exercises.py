"""Every chapter's exercise, run as the learner would: the starter and the kept wrong
answers must fail with a reason, the chapter's solution must pass."""
from __future__ import annotations

import pytest

from tests.conftest import require
from tests.exercise_cells import all_exercises

pytestmark = pytest.mark.live
# Chapters 09-12 run only where the kernel has kprobes and trampolines: `make vm-test`.
_FULL_KERNEL = ("09-", "10-", "11-", "12-")


def _cases():
    for ex in all_exercises():
        marks = [pytest.mark.full_kernel] if ex.chapter.startswith(_FULL_KERNEL) else []
        yield pytest.param(ex, id=ex.name, marks=marks)


def _run(ip, ex, cell_source: str):
    from ebpf_magic.exercises import check

    for src in ex.setup:
        ip.run_cell(src).raise_error()
    ip.run_cell(cell_source).raise_error()
    return check(ex.name, ip.user_ns[ex.handle])


@pytest.mark.parametrize("ex", list(_cases()))
def test_solution_passes(ip, ex):
    for family in ex.requires:
        require(family)
    assert ex.solution, f"{ex.chapter}: exercise {ex.name} has no cell tagged exercise-solution"
    verdict = _run(ip, ex, ex.solution)
    assert verdict.passed, verdict.reason


@pytest.mark.parametrize("ex", list(_cases()))
def test_starter_and_wrong_answers_fail_saying_why(ip, ex):
    for family in ex.requires:
        require(family)
    assert ex.starter, f"{ex.chapter}: exercise {ex.name} has no cell tagged exercise-starter"
    for answer in [ex.starter] + [p.read_text() for p in ex.wrong]:
        verdict = _run(ip, ex, answer)
        assert not verdict.passed, f"{ex.name} passed on a wrong answer:\n{answer}"
        assert len(verdict.reason) > 15, verdict.reason
        ip.run_line_magic("bpf_detach", "--all")
