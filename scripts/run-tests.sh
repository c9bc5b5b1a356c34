#!/usr/bin/env bash
# The whole suite: lint, unit tests (no root), live tests (root + BPF), notebooks under strict nbval.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
echo "== ruff"
"$py" -m ruff check ebpf_magic tests bench
echo "== unit, live and notebook tests"
exec "$py" -m pytest -p no:cacheprovider --durations=10 \
  tests notebooks/00-quickstart.ipynb --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg "$@"
