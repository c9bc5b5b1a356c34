"""The lab's tables kept as data (``ebpf_magic/data/*.tsv``): tab-separated, ``#`` comments,
a header row, ``-`` for an empty field."""
from __future__ import annotations

import csv
from functools import cache
from importlib import resources


@cache
def tsv_rows(name: str) -> tuple[dict[str, str], ...]:
    text = resources.files(__package__).joinpath("data", name).read_text()
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    return tuple({k: ("" if v == "-" else v) for k, v in row.items()}
                 for row in csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
