#!/usr/bin/env bash
# What the browser tests (tests/browser) need, as root: the distribution's Chromium and its
# WebDriver, and Selenium in the lab's venv. Selenium is always given /usr/bin/chromedriver, so it
# never downloads a browser or a driver. Idempotent and quick when everything is there.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
py=$here/.venv/bin/python
log() { printf '\033[1m[setup-browser]\033[0m %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-browser.sh must run as root (apt): sudo make test" >&2
  exit 1
fi
missing=()
for p in chromium chromium-driver; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Debian's own packages from the configured archive: no browser or driver download of any other kind.
  apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null
  apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null \
    || { echo "apt-get install ${missing[*]} failed: the browser tests cannot run" >&2; exit 2; }
fi
if ! "$py" -c 'import selenium' 2>/dev/null; then
  log "pip install selenium (log: .venv/pip.log)"
  "$py" -m pip install -q --disable-pip-version-check 'selenium>=4.11' >>"$here/.venv/pip.log" 2>&1 \
    || { tail -n 20 "$here/.venv/pip.log" >&2; exit 1; }
fi
