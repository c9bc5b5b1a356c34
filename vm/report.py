"""The host's report of a test-VM run, read from the guest's serial console log.

vm/guest-run.sh prints "@@EBPFLAB ..." lines (see vm/junit_lines.py for the per-test ones).
Exit status: 0 all ran and passed, 1 a test or a pytest run failed, 3 the VM never reached
its end (timeout, crash, no 9p share).
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

MARK = "@@EBPFLAB "


# pytest -v's progress line: "path::test OUTCOME   [ 42%]"; an id alone is a test still running.
PROGRESS = re.compile(r"^(\S+::.+?)(?: (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b.*)?$")


@dataclass
class Run:
    name: str
    command: str = ""
    rc: int | None = None
    tests: list[tuple[str, float, str, str]] = field(default_factory=list)
    progress: list[tuple[str, str]] = field(default_factory=list)   # until the JUnit lines come


@dataclass
class Console:
    runs: list[Run] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    files: dict[str, list[str]] = field(default_factory=dict)
    boot: float | None = None
    end_rc: int | None = None
    end_note: str = ""
    tail: list[str] = field(default_factory=list)


def parse(lines: list[str]) -> Console:
    c = Console()
    current: Run | None = None
    capturing: str | None = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if capturing is not None:
            if line == MARK + "file end":
                capturing = None
            else:
                c.files[capturing].append(line)
            continue
        c.tail = (c.tail + [line])[-40:]
        if not line.startswith(MARK):
            if current is not None and current.rc is None and (m := PROGRESS.match(line)):
                current.progress.append((m.group(2) or "running", m.group(1)))
            continue
        body = line[len(MARK):]
        if m := re.match(r"init uptime=([\d.]+)", body):
            c.boot = float(m.group(1))
        elif m := re.match(r"run (\S+) start: (.*)", body):
            current = Run(m.group(1), m.group(2))
            c.runs.append(current)
        elif m := re.match(r"run (\S+) rc=(\d+)", body):
            if current is not None and current.name == m.group(1):
                current.rc = int(m.group(2))
        elif m := re.match(r"test (\S+) ([\d.]+) (.*?)(?: \| (.*))?$", body):
            if current is not None:
                current.tests.append((m.group(1), float(m.group(2)), m.group(3), m.group(4) or ""))
        elif m := re.match(r"file (\S+) begin", body):
            capturing = m.group(1)
            c.files[capturing] = []
        elif m := re.match(r"end rc=(\d+)\s*(.*)", body):
            c.end_rc, c.end_note = int(m.group(1)), m.group(2)
        else:
            c.info.append(body)
    return c


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--console", required=True, type=Path)
    ap.add_argument("--qemu-rc", type=int, default=0)
    ap.add_argument("--qemu-err", type=Path)
    ap.add_argument("--wall", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=0)
    ap.add_argument("--accel", default="?")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    c = parse(a.console.read_text(errors="replace").splitlines())
    print()
    print("=" * 100)
    print(f"Full-kernel VM report ({a.accel.upper()}; console: {a.console})")
    for line in c.info:
        print(f"  {line}")
    for run in c.runs:
        status = {None: "did not finish", 0: "passed", 5: "no test selected"}.get(run.rc, f"failed (rc {run.rc})")
        print(f"\n-- {run.name}: {run.command}  -> {status}")
        for outcome, seconds, test, message in run.tests:
            note = f"  | {message}" if message and outcome != "passed" else ""
            print(f"  {outcome:<8}{seconds:8.1f} s  {test}{note}")
        if run.rc is None:   # cut short: no JUnit report, only what pytest -v had printed
            for outcome, test in run.progress:
                print(f"  {outcome.lower():<8}       -    {test}")

    counts: dict[str, int] = {}
    for run in c.runs:
        outcomes = [t[0] for t in run.tests] if run.rc is not None else [p[0].lower() for p in run.progress]
        for outcome in outcomes:
            counts[outcome] = counts.get(outcome, 0) + 1
    tested = sum(s for run in c.runs for _, s, _, _ in run.tests)
    for name, text in c.files.items():
        if a.out:
            target = a.out / Path(name).name
            target.write_text("\n".join(text) + "\n")
            print(f"\n{name} as regenerated in the VM: {target}")

    print()
    boot = f"boot to init {c.boot:.0f} s, " if c.boot is not None else ""
    print(f"{boot}tests {tested:.0f} s, whole VM run {a.wall} s")
    passed, failed = counts.get("passed", 0), counts.get("failed", 0) + counts.get("error", 0)
    summary = f"{passed} passed, {failed} failed"
    if counts.get("skipped"):
        summary += f", {counts['skipped']} skipped"

    if c.end_rc is None:
        if a.qemu_rc == 124:
            why = f"timed out after {a.timeout} s (VM_TIMEOUT)"
        else:
            err = a.qemu_err.read_text(errors="replace").strip() if a.qemu_err and a.qemu_err.exists() else ""
            why = f"the VM stopped before the end of the run (qemu exit {a.qemu_rc}) {err[:300]}"
        print(summary)
        print(f"FAILED: {why}. Last console lines:")
        for line in c.tail:
            print(f"  | {line}")
        return 3
    if c.end_rc == 99 or (not c.runs and c.end_rc):
        print(f"FAILED: {c.end_note or 'the guest could not run the tests'} (rc {c.end_rc})")
        for line in c.tail:
            print(f"  | {line}")
        return 3
    bad_runs = [r.name for r in c.runs if r.rc not in (0, 5)]
    print(summary)
    if failed or bad_runs or c.end_rc:
        print(f"FAILED: {', '.join(bad_runs) or 'a test'} failed in the VM")
        return 1
    print("OK: every check passed in the full-kernel VM")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
