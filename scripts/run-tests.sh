#!/usr/bin/env bash
# The whole suite: lint, unit tests (no root), live tests (root + BPF), notebooks under strict nbval.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
echo "== ruff"
"$py" -m ruff check ebpf_magic tests bench notebooks/conftest.py
if command -v vagrant >/dev/null; then
  echo "== vagrant validate"
  # No provider is usable on the CI machine; the Vagrantfile itself is still checked.
  VAGRANT_CHECKPOINT_DISABLE=1 vagrant validate --ignore-provider
fi
echo "== browser test set-up (Chromium, chromium-driver, Selenium)"
bash scripts/setup-browser.sh
echo "== unit, live and notebook tests"
# Live views return their DataFrame twin instead of a widget, so nbval can run them. The browser
# tests (tests/browser) start JupyterLab without it: there the live views are real widgets.
export EBPF_LAB_HEADLESS=1
exec "$py" -m pytest -p no:cacheprovider --durations=10 \
  tests notebooks --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg "$@"
