# The lab's two commands: `make lab` (set up, then JupyterLab) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8888

.PHONY: lab test setup lint unit live notebooks bench vm-test

setup:
	@bash scripts/setup-system.sh

lab: setup
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --port=$(PORT) --no-browser --allow-root \
		--ServerApp.root_dir=notebooks

test: setup
	@bash scripts/run-tests.sh

# Writes bench/results/<date>-<host>.json, then the README's table from the newest result file.
bench: setup
	$(PY) bench/bench_lab.py $(BENCH_ARGS); rc=$$?; $(PY) bench/readme_table.py && exit $$rc

# The full-kernel checks in a qemu VM (long, fetches packages; not part of .ci/run): vm/run-tests.sh.
# VM_ARGS="tests/seed -k kprobe" replaces the default selection (-m full_kernel tests, chapters 09-12).
vm-test:
	@bash vm/run-tests.sh $(VM_ARGS)
