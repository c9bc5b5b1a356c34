"""Exercises that check the learner's own program, as ebpf.party does.

Each exercise is a check function registered under a name (``"02-openat-count"``).
The check runs a workload whose answer the learner's program must find (a
random file name, a random number of calls, a process started for the purpose),
then reads the learner's maps or events and compares. A wrong or missing answer
is not an error of the lab: the check raises :class:`NotYet` with the reason, and
``check()`` turns it into a :class:`Verdict` that says so.

Check modules live beside this file, one per chapter (``ch02.py``), and register
with :func:`exercise`. ``%bpf_check NAME HANDLE`` is the notebook's way in.
"""
from __future__ import annotations

import errno
import html
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UsageError


class NotYet(Exception):
    """Raised inside a check: the learner's answer is missing or wrong, and why."""


@dataclass(frozen=True)
class Exercise:
    name: str
    chapter: str
    title: str
    run: Callable[[object], str]   # handle -> what was checked (on a pass); raises NotYet


@dataclass(frozen=True)
class Verdict:
    """What ``check`` found: true on a pass; shown green or orange in a notebook."""

    exercise: str
    passed: bool
    reason: str = ""

    def __repr__(self) -> str:
        mark = "passed" if self.passed else "not yet"
        return f"{self.exercise}: {mark}: {self.reason}"

    def __bool__(self) -> bool:
        return self.passed

    def _repr_html_(self) -> str:
        colour, mark = ("#1a7f37", "&#10004; passed") if self.passed else ("#b35900", "&#10008; not yet")
        return (f'<div style="border-left:4px solid {colour};padding:2px 8px">'
                f'<b style="color:{colour}">{mark}</b> <code>{html.escape(self.exercise)}</code>: '
                f'{html.escape(self.reason)}</div>')


_REGISTRY: dict[str, Exercise] = {}


def exercise(name: str, chapter: str, title: str):
    """Register ``run(handle) -> str`` as the check of exercise ``name``."""
    def register(run):
        if name in _REGISTRY and _REGISTRY[name].run is not run:
            raise ValueError(f"exercise {name!r} is registered twice")
        _REGISTRY[name] = Exercise(name, chapter, title, run)
        return run
    return register


def registry() -> dict[str, Exercise]:
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("ch"):
            importlib.import_module(f"{__name__}.{mod.name}")
    return dict(_REGISTRY)


def check(name: str, handle) -> Verdict:
    """Run exercise ``name``'s workload against ``handle`` and say whether it found the answer."""
    exercises = registry()
    if name not in exercises:
        known = ", ".join(sorted(exercises)) or "none"
        raise UsageError(f"no exercise named {name!r}", hint=f"one of: {known}")
    try:
        return Verdict(name, True, exercises[name].run(handle))
    except NotYet as exc:
        return Verdict(name, False, str(exc))


def require_map(handle, name: str):
    """The learner's map ``name`` as a MapView, or NotYet saying which maps the program has."""
    names = list(handle.map_names)
    if name not in names:
        have = ", ".join(names) or "no maps"
        raise NotYet(f"the program needs a map named {name!r}; it has {have}")
    return handle[name]


def entries(handle, map_name: str) -> dict:
    """The learner's map ``map_name`` as {key: value} (scalar keys and values)."""
    frame = require_map(handle, map_name).to_frame()
    if not {"key", "value"} <= set(frame.columns):
        raise NotYet(f"{map_name!r} should map one number to one number; it has columns {list(frame.columns)}")
    return {int(k): int(v) for k, v in zip(frame["key"], frame["value"], strict=True)}


def misjudged(what: str, refused: int | None, should_refuse: bool) -> str | None:
    """Why a syscall the check made went the wrong way (EPERM wanted or not), or None if it did not."""
    if should_refuse and refused != errno.EPERM:
        got = "went through" if refused is None else f"failed with {errno.errorcode[refused]}"
        return f"{what}: {got}, should be refused with EPERM"
    if not should_refuse and refused is not None:
        return f"{what}: refused with {errno.errorcode[refused]}, should go through"
    return None
