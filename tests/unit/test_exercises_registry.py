"""The exercise registry's own logic: a check's NotYet becomes a verdict, not an error."""
from __future__ import annotations

import pytest

from ebpf_magic import exercises
from ebpf_magic.errors import UsageError


def test_verdicts_from_a_check(monkeypatch):
    monkeypatch.setattr(exercises, "_REGISTRY", {})

    @exercises.exercise("t-even", "00-test", "an even number")
    def _even(value):
        if value % 2:
            raise exercises.NotYet(f"{value} is odd")
        return f"{value} is even"

    assert exercises.check("t-even", 4).passed
    verdict = exercises.check("t-even", 3)
    assert not verdict and verdict.reason == "3 is odd"
    assert "not yet" in verdict._repr_html_() and "3 is odd" in repr(verdict)
    with pytest.raises(UsageError, match="no exercise named"):
        exercises.check("t-missing", 1)


def test_misjudged_says_which_way_a_syscall_went():
    import errno

    assert exercises.misjudged("unlink keep-1", errno.EPERM, True) is None
    assert exercises.misjudged("unlink x", None, False) is None
    assert exercises.misjudged("unlink keep-1", None, True) == "unlink keep-1: went through, should be refused with EPERM"
    assert "failed with EACCES" in exercises.misjudged("unlink keep-1", errno.EACCES, True)
    assert exercises.misjudged("mkdir in open-1", errno.EPERM, False) == \
        "mkdir in open-1: refused with EPERM, should go through"
