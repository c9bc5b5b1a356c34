#!/usr/bin/env bash
# The whole suite, in order: lint, unit (no root), live (root + BPF), notebooks under strict nbval.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
echo "== ruff"
.venv/bin/ruff check ebpf_magic tests bench
echo "== unit, live and notebook tests"
"$py" -m pytest tests -p no:cacheprovider
