# The lab's two commands: `make lab` (set up, then JupyterLab) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8888

.PHONY: lab test setup lint unit live notebooks bench vm-test vm-image browser-test

setup:
	@bash scripts/setup-system.sh

lab: setup
	$(VENV)/bin/jupyter lab --config=jupyter/jupyter_server_config.py --port=$(PORT)

test: setup
	@bash scripts/run-tests.sh

# Chromium (Debian's) drives JupyterLab through every host chapter: plots, live views, leftovers.
browser-test: setup
	@bash scripts/setup-browser.sh
	$(PY) -m pytest -p no:cacheprovider tests/browser $(PYTEST_ARGS)

# Executes every chapter and stores its outputs: here, or in the full-kernel VM (09-12: kprobes, trampolines).
notebooks: setup
	@bash scripts/execute-notebooks.sh

# Writes bench/results/<date>-<host>.json, then the README's table from the newest result file.
bench: setup
	$(PY) bench/bench_lab.py $(BENCH_ARGS); rc=$$?; $(PY) bench/readme_table.py && exit $$rc

# The full-kernel checks in a qemu VM (.ci/run runs them after `make test`): vm/run-tests.sh.
# VM_ARGS="tests/seed -k kprobe" replaces the default selection (-m full_kernel tests, chapters 09-17).
# The image is cached in $EBPF_LAB_VM_CACHE (default /var/cache/ebpf-lab/vm), keyed by its inputs.
vm-test:
	@bash vm/run-tests.sh $(VM_ARGS)

# Only build (or find) the VM image; .ci/run builds it while `make test` runs.
vm-image:
	@bash vm/host-tools.sh
	@bash vm/build-image.sh
