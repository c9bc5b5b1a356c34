"""Print one "@@EBPFLAB test" line per test case of a JUnit XML report.

Runs inside the test VM after each pytest run; vm/run-tests.sh on the host reads these lines
from the serial console, which is the only channel out of the VM:

    @@EBPFLAB test <passed|failed|error|skipped> <seconds> <test id>[ | <message>]
"""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def test_id(case: ET.Element) -> str:
    classname, name = case.get("classname", ""), case.get("name", "")
    file = case.get("file")
    if file:
        return f"{file}::{name}"
    # pytest's classname is the dotted path of the module (and class); keep it readable
    return f"{classname}::{name}" if classname else name


def outcome(case: ET.Element) -> tuple[str, str]:
    for tag in ("failure", "error", "skipped"):
        node = case.find(tag)
        if node is not None:
            message = (node.get("message") or node.text or "").strip().splitlines()
            word = "failed" if tag == "failure" else tag
            return word, message[0][:200] if message else ""
    return "passed", ""


def main(path: str) -> None:
    for case in ET.parse(path).getroot().iter("testcase"):
        word, message = outcome(case)
        seconds = float(case.get("time") or 0)
        line = f"@@EBPFLAB test {word} {seconds:.2f} {test_id(case)}"
        print(f"{line} | {message}" if message else line)


if __name__ == "__main__":
    main(sys.argv[1])
