#!/usr/bin/env bash
# `make notebooks`: execute chapters and store their outputs, plots included, in the notebooks.
# A chapter whose program types this kernel runs executes here; the others (09-12: kprobes and
# trampolines) execute in the full-kernel VM (vm/run-tests.sh --execute-notebooks), whose
# outputs are then copied in. NOTEBOOKS="notebooks/05-*.ipynb" limits the run.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
# Live views store their table instead of a widget that needs a running kernel to draw.
export EBPF_LAB_HEADLESS=1

read -r -a chosen <<< "${NOTEBOOKS:-$(echo notebooks/[0-9][0-9]-*.ipynb)}"
here=() vm=()
for nb in "${chosen[@]}"; do
  if "$py" - "$nb" <<'PY'
import json, sys
from ebpf_magic.features import feature
needs = json.load(open(sys.argv[1])).get("metadata", {}).get("ebpf", {}).get("requires", [])
missing = [f for f in needs if (s := feature(f)) is not None and not s.available]
sys.exit(1 if missing else 0)
PY
  then here+=("$nb"); else vm+=("$nb"); fi
done

rc=0
for nb in "${here[@]}"; do
  echo "[notebooks] $nb (this kernel)"
  "$py" -m jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 "$nb" \
    || { echo "[notebooks] $nb failed" >&2; rc=1; }
done
if [ ${#vm[@]} -gt 0 ]; then
  echo "[notebooks] ${vm[*]} (full-kernel VM)"
  bash vm/run-tests.sh --execute-notebooks "${vm[@]}" || rc=1
  for nb in "${vm[@]}"; do
    out=.vm/runs/latest/out/$(basename "$nb")
    if [ -s "$out" ]; then cp "$out" "$nb"; else echo "[notebooks] the VM did not execute $nb" >&2; rc=1; fi
  done
fi
exit "$rc"
