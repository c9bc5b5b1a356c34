#!/usr/bin/env bash
# The whole suite: lint, unit tests (no root), live tests (root + BPF), notebooks under strict nbval.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
echo "== ruff"
"$py" -m ruff check ebpf_magic tests bench notebooks/conftest.py
echo "== vagrant validate"
# Debian's own vagrant, and no provider: validate checks the Vagrantfile without a box or a VM.
if ! command -v vagrant >/dev/null; then
  echo "installing vagrant (Debian's, without a provider)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=600 vagrant >/dev/null \
    || { echo "apt-get install vagrant failed: vagrant validate cannot run" >&2; exit 2; }
fi
# Its own empty home, so that no plug-in or box of the user's is read, and nothing is fetched.
vagrant_home=$(mktemp -d)
vrc=0
VAGRANT_HOME=$vagrant_home VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_BOX_UPDATE_CHECK_DISABLE=1 \
  vagrant validate --ignore-provider || vrc=$?
rm -rf "$vagrant_home"
[ "$vrc" = 0 ] || { echo "vagrant validate failed (rc $vrc)" >&2; exit "$vrc"; }
echo "== browser set-up"
# Debian's chromium and chromium-driver, and Selenium: the browser tests below need them.
bash scripts/setup-browser.sh
echo "== unit, live and notebook tests"
# Live views return their DataFrame twin instead of a widget, so nbval can run them. The browser
# tests run apart, without it: there the live views are real widgets in a real JupyterLab.
# make turns any failure into its own status 2: pytest's goes to EBPF_LAB_RC_FILE too (.ci/run).
rc=0
EBPF_LAB_HEADLESS=1 "$py" -m pytest -p no:cacheprovider --durations=10 \
  --ignore=tests/browser tests notebooks --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg "$@" || rc=$?
echo "== browser tests (Chromium, JupyterLab, Run All per host chapter)"
brc=0
env -u EBPF_LAB_HEADLESS EBPF_LAB_REQUIRE_BROWSER=1 "$py" -m pytest -p no:cacheprovider --durations=20 tests/browser || brc=$?
[ "$rc" != 0 ] || rc=$brc
[ -z "${EBPF_LAB_RC_FILE:-}" ] || echo "$rc" > "$EBPF_LAB_RC_FILE"
exit "$rc"
