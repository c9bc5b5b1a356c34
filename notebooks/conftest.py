"""pytest hooks for the chapters, run as nbval items (``pytest --nbval notebooks/...``).

Each chapter declares what it needs in its top-level notebook metadata::

    "ebpf": {"requires": ["tracepoint"], "kernel_min": "4.7"}

and these hooks

- skip every cell of a chapter whose requirement this kernel lacks, as
  ``ebpf_magic.features.feature(family)`` says (unknown families count as
  available), or whose ``kernel_min`` is newer than the running kernel; the
  skip message carries the reason. With ``EBPF_MAGIC_REQUIRE_LIVE=1`` those
  are the only skips allowed: any other skip of a chapter cell is a failure;
- time each chapter (first cell's set-up to last cell's teardown, the kernel
  start and stop included) and print one line per chapter at the end;
- fail a chapter's last cell if a BPF program held by the notebook kernel, a
  network namespace or a cgroup created while the chapter ran is still
  there after it. Other processes may load programs meanwhile: a program
  counts only if the notebook kernel (or a process it started) holds an fd
  on it (``prog_id:`` in /proc/PID/fdinfo); netns and cgroups are diffed;
- regenerate ../docs/compatibility.md (chapter, requirements, result) after a
  run that included chapters of this directory, keeping the rows of
  chapters not run this time.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import descendants

REQUIRE_LIVE = os.environ.get("EBPF_MAGIC_REQUIRE_LIVE") == "1"
HERE = Path(__file__).resolve().parent
# The full-kernel VM writes its rows to a file of its own, which the host merges (vm/run-tests.sh).
COMPAT = Path(os.environ.get("EBPF_LAB_COMPAT_FILE") or HERE.parent / "docs" / "compatibility.md")
CGROUP_ROOT = "/sys/fs/cgroup"


# --- what a chapter needs ----------------------------------------------------------

def _version(text: str) -> tuple[int, ...]:
    """(6, 18, 44) from "6.18.44-amd64" or "6.18"; () if it does not start with a number."""
    m = re.match(r"\d+(?:\.\d+)*", text.strip())
    return tuple(int(x) for x in m.group(0).split(".")) if m else ()


@dataclass
class Chapter:
    """One notebook: its requirements, its cells in this run, and what happened to them."""

    path: Path
    requires: list[str]
    kernel_min: str | None
    n_code_cells: int
    items: list = field(default_factory=list)
    skip_reason: str | None = None      # a missing requirement, kernel_min (or, not live, not root)
    error: str | None = None            # the requirements could not be checked at all
    notes: dict[str, str] = field(default_factory=dict)   # family -> "yes" / "no" / "no probe"
    before: dict | None = None          # snapshot taken before the first cell
    kernel_pids: set[int] = field(default_factory=set)
    start: float | None = None
    wall: float | None = None
    outcomes: dict[str, str] = field(default_factory=dict)  # item name -> passed/failed/skipped

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def in_repo(self) -> bool:
        return self.path.parent == HERE


def _check_requirements(ch: Chapter) -> None:
    """Set ch.skip_reason when this kernel lacks something the chapter needs."""
    release = platform.release()
    if ch.kernel_min and _version(release) < _version(ch.kernel_min):
        ch.skip_reason = f"needs Linux >= {ch.kernel_min}, this kernel is {release}"
        return
    if not ch.requires:
        return
    if os.geteuid() != 0:
        # Not a kernel limitation: a skip only without EBPF_MAGIC_REQUIRE_LIVE=1 (as in tests/conftest.py).
        why = "this chapter loads BPF programs: run the notebook tests as root"
        if REQUIRE_LIVE:
            ch.error = f"{why} (EBPF_MAGIC_REQUIRE_LIVE=1)"
        else:
            ch.skip_reason = why
        return
    from ebpf_magic.families import CI_FAMILIES
    from ebpf_magic.features import feature

    missing, broken = [], []
    for family in ch.requires:
        f = feature(family)
        if f is None:
            ch.notes[family] = "no probe"       # unknown to features.py: counted as available
        elif f.available:
            ch.notes[family] = "yes"
        else:
            ch.notes[family] = "no"
            missing.append(f"this kernel lacks {family}: {f.reason}")
            # The CI kernel runs these: a failed probe there is a broken set-up, not a kernel limit.
            if family in CI_FAMILIES:
                broken.append(f"{family} ({f.reason})")
    if broken and REQUIRE_LIVE:
        ch.error = (f"the CI kernel runs {', '.join(broken)}, but the probe failed "
                    "(EBPF_MAGIC_REQUIRE_LIVE=1; see ebpf_magic.families.CI_FAMILIES)")
    elif missing:
        ch.skip_reason = "; ".join(missing)


def _nbval_cell_class():
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:
        return None
    return IPyNbCell


def _chapters(config) -> dict[Path, Chapter]:
    return config.stash.setdefault(_CHAPTERS, {})


_CHAPTERS = pytest.StashKey[dict]()


def _chapter_of(item) -> Chapter | None:
    return item.config.stash.get(_CHAPTERS, {}).get(Path(str(item.path)).resolve())


@pytest.hookimpl(trylast=True)   # after -k / -m deselection: the last cell is the last one that runs
def pytest_collection_modifyitems(session, config, items):
    cell_class = _nbval_cell_class()
    if cell_class is None:
        return
    chapters = _chapters(config)
    for item in items:
        if not isinstance(item, cell_class):
            continue
        path = Path(str(item.path)).resolve()
        ch = chapters.get(path)
        if ch is None:
            nb = item.parent.nb
            meta = nb.metadata.get("ebpf", {})
            ch = chapters[path] = Chapter(
                path=path,
                requires=list(meta.get("requires", [])),
                kernel_min=meta.get("kernel_min"),
                n_code_cells=sum(1 for c in nb.cells if c.cell_type == "code"),
            )
            try:
                _check_requirements(ch)
            except Exception as exc:  # reported as a failure of every cell, never as a skip
                ch.error = f"checking the requirements {ch.requires} failed: {type(exc).__name__}: {exc}"
        ch.items.append(item)
        if ch.skip_reason:
            item.add_marker(pytest.mark.skip(reason=ch.skip_reason))


# --- around each cell ------------------------------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    ch = _chapter_of(item)
    if ch is not None and item is ch.items[0]:
        ch.start = time.monotonic()
    try:
        return (yield)
    finally:
        if ch is not None and item is ch.items[-1] and ch.start is not None:
            ch.wall = time.monotonic() - ch.start   # includes the kernel's shutdown (teardown)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    ch = _chapter_of(item)
    if ch is None:
        return
    if ch.error:
        pytest.fail(ch.error, pytrace=False)
    if item is ch.items[0] and not ch.skip_reason:
        ch.before = _snapshot()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    ch = _chapter_of(item)
    if ch is None:
        return report
    if call.when == "call" and item is ch.items[-1] and ch.before is not None:
        left = _leftovers(ch, item)
        if left:
            _fail(report, "left behind after the chapter's last cell:\n" + "\n".join(left))
    if report.skipped and REQUIRE_LIVE and not _allowed_skip(ch):
        _fail(report, f"skipped, but EBPF_MAGIC_REQUIRE_LIVE=1 allows skips only for a missing "
                      f"requirement or kernel_min: {_skip_text(report)}")
    _record(ch, item, report)
    return report


def _allowed_skip(ch: Chapter) -> bool:
    return ch.skip_reason is not None


def _skip_text(report) -> str:
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2])
    return str(report.longrepr)


def _fail(report, message: str) -> None:
    if report.failed and report.longrepr is not None:
        message = f"{report.longrepr}\n\n{message}"
    report.outcome = "failed"
    report.longrepr = message
    if hasattr(report, "wasxfail"):
        del report.wasxfail


def _record(ch: Chapter, item, report) -> None:
    """The worst outcome of the item's phases: failed > skipped > passed."""
    previous = ch.outcomes.get(item.name)
    if report.failed:
        ch.outcomes[item.name] = "failed"
    elif report.skipped and previous != "failed":
        ch.outcomes[item.name] = "skipped"
    elif report.passed and previous is None and report.when == "call":
        ch.outcomes[item.name] = "passed"


# --- leftovers ---------------------------------------------------------------------

def _snapshot() -> dict:
    return {"progs": _bpftool_progs(), "netns": _netns(), "cgroups": _cgroups()}


def _bpftool_progs() -> dict[int, str] | None:
    """Every BPF program on the machine, id -> "type name"; None where bpftool cannot tell."""
    if not shutil.which("bpftool") or os.geteuid() != 0:
        return None
    out = subprocess.run(["bpftool", "-j", "prog", "list"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        return None
    return {p["id"]: f"{p.get('type', '?')} {p.get('name', '')}".strip() for p in json.loads(out.stdout or "[]")}


def _ours(name: str) -> bool:
    # Chapters name what they create with "lab"; systemd and other sessions create and remove
    # cgroups of their own meanwhile, which are none of a chapter's business.
    return "lab" in os.path.basename(name).lower()


def _netns() -> set[str]:
    if not shutil.which("ip"):
        return set()
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip() and _ours(line.split()[0])}


LAB_PARENT = "ebpf-lab"   # ebpf_magic.cgroups.LAB_PARENT: every lab process's cgroups, named <pid>-<n>


def _cgroups() -> set[str]:
    # The lab's shared parent is not counted: it goes with the last lab cgroup of any process, so a
    # test running beside the chapter can keep it after the chapter removed its own. Its children are.
    found = set()
    for root, dirs, _files in os.walk(CGROUP_ROOT, onerror=lambda _e: None):
        in_lab = os.path.basename(root) == LAB_PARENT
        found.update(os.path.join(root, d) for d in dirs if d != LAB_PARENT and (in_lab or _ours(d)))
    return found


def _made_by(path: str, pids: set[int]) -> bool:
    """A lab cgroup belongs to the process in its name; any other new cgroup counts as the chapter's."""
    parent, name = os.path.split(path)
    owner = name.split("-", 1)[0]
    return os.path.basename(parent) != LAB_PARENT or not owner.isdigit() or int(owner) in pids


def _kernel_pid(item) -> int | None:
    """The notebook kernel's pid, through nbval's RunningKernel -> KernelManager -> provisioner."""
    kernel = getattr(item.parent, "kernel", None)
    km = getattr(kernel, "km", None)   # RunningKernel.stop() deletes km
    provisioner = getattr(km, "provisioner", None)
    pid = getattr(provisioner, "pid", None)
    if pid is None:
        pid = getattr(getattr(provisioner, "process", None), "pid", None)
    return pid


def _held_prog_ids(pid: int) -> set[int]:
    ids = set()
    base = f"/proc/{pid}/fdinfo"
    try:
        fds = os.listdir(base)
    except OSError:
        return ids
    for fd in fds:
        try:
            with open(f"{base}/{fd}") as f:
                ids.update(int(line.split()[1]) for line in f if line.startswith("prog_id:"))
        except (OSError, ValueError, IndexError):
            continue
    return ids


def _leftovers(ch: Chapter, item) -> list[str]:
    before, now = ch.before, _snapshot()
    out = []
    pid = _kernel_pid(item)
    if pid is not None:
        held: set[int] = set()
        for p in descendants(pid):
            held |= _held_prog_ids(p)
        if now["progs"] is not None:
            # Only programs created during the chapter (not in the first snapshot) and still loaded.
            held = {i for i in held if i in now["progs"] and i not in (before["progs"] or {})}
        for prog_id in sorted(held):
            what = (now["progs"] or {}).get(prog_id, "")
            out.append(f"  BPF program id {prog_id} {what} still held by the notebook kernel (pid {pid}): "
                       f"end the chapter with %bpf_detach --all")
    for name in sorted(now["netns"] - before["netns"]):
        out.append(f"  network namespace {name} (ip netns del {name})")
    kernel_pids = descendants(pid) if pid is not None else set()
    for path in sorted(now["cgroups"] - before["cgroups"]):
        if pid is None or _made_by(path, kernel_pids):
            out.append(f"  cgroup {path} (rmdir it)")
    return out


# --- reporting ---------------------------------------------------------------------

def _result(ch: Chapter) -> str:
    if ch.error:
        return f"failed: {ch.error}"
    if ch.skip_reason:
        return f"skipped: {ch.skip_reason}"
    failed = [name for name, outcome in ch.outcomes.items() if outcome == "failed"]
    if failed:
        return f"failed ({', '.join(failed)})"
    if len(ch.outcomes) < len(ch.items):
        return f"incomplete ({len(ch.outcomes)} of {len(ch.items)} cells ran)"
    skipped = sum(1 for o in ch.outcomes.values() if o == "skipped")
    return "passed" + (f" ({skipped} cells skipped)" if skipped else "")


def _ran(config) -> list[Chapter]:
    return [ch for ch in _chapters(config).values() if ch.outcomes]


def pytest_sessionfinish(session, exitstatus):
    chapters = [ch for ch in _ran(session.config) if ch.in_repo]
    if chapters:
        _write_compat(chapters)
        session.config.stash[_WROTE] = True


_WROTE = pytest.StashKey[bool]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    chapters = _ran(config)
    if not chapters:
        return
    tr = terminalreporter
    tr.ensure_newline()
    tr.section("eBPF chapters: wall time")
    width = max(len(ch.name) for ch in chapters)
    for ch in sorted(chapters, key=lambda c: c.name):
        wall = f"{ch.wall:6.1f} s" if ch.wall is not None else "     - "
        tr.write_line(f"{ch.name:<{width}}  {wall}  {len(ch.outcomes):3d} cells  {_result(ch)}")
    if config.stash.get(_WROTE, False):
        tr.write_line(f"wrote {os.path.relpath(COMPAT)}")


def _table_row(ch: Chapter, release: str, date: str) -> dict[str, str]:
    import compat_table  # beside this file: pytest puts notebooks/ on sys.path for its conftest

    requires = ", ".join(f"{fam} ({ch.notes.get(fam, 'not checked')})" for fam in ch.requires) or "none"
    counts = {o: sum(1 for v in ch.outcomes.values() if v == o) for o in ("passed", "failed", "skipped")}
    return {
        "chapter": compat_table.chapter_link(ch.name, ch.path.name),
        "requires": requires,
        "kernel_min": ch.kernel_min or "-",
        "result": _result(ch),
        "cells": compat_table.cells_text(ch.n_code_cells, counts["passed"], counts["failed"], counts["skipped"]),
        "wall time": f"{ch.wall:.1f} s" if ch.wall is not None else "-",
        "kernel": release,
        "where": os.environ.get("EBPF_LAB_COMPAT_WHERE") or compat_table.HOST,
        "date": date,
    }


def _write_compat(chapters: list[Chapter]) -> None:
    import compat_table

    release, date = platform.release(), dt.date.today().isoformat()
    compat_table.update(COMPAT, {ch.name: _table_row(ch, release, date) for ch in chapters})
