#!/usr/bin/env python3
"""Point every chapter at the "eBPF lab" kernel: rewrites metadata.kernelspec only.

    .venv/bin/python scripts/set-kernelspec.py [notebooks/*.ipynb]

Safe to re-run (after a merge, or on new chapters): a notebook that already names the kernel is
left untouched, and no other part of any notebook changes.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ebpf_magic.kernelspec import metadata  # noqa: E402


def main(paths: list[str]) -> None:
    if not paths:
        paths = sorted(str(p) for p in (Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
    want = metadata()
    for path in paths:
        text = Path(path).read_text()
        nb = json.loads(text)   # keeps the keys' order: nbformat.write would sort them all
        if nb["metadata"].get("kernelspec") == want:
            continue
        nb["metadata"]["kernelspec"] = want
        nbformat.validate(nbformat.from_dict(nb))
        indent = 1 if text.startswith("{\n \"") else 2
        Path(path).write_text(json.dumps(nb, indent=indent, ensure_ascii=False) + "\n")
        print(f"{path}: kernelspec -> {want['name']}")


if __name__ == "__main__":
    main(sys.argv[1:])
