# The lab's two commands: `make lab` (set up, then JupyterLab) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8888

.PHONY: lab test setup lint unit live notebooks bench vm-test

setup:
	@bash scripts/setup-system.sh

lab: setup
	$(VENV)/bin/jupyter lab --config=jupyter/jupyter_server_config.py --port=$(PORT)

test: setup
	@bash scripts/run-tests.sh

bench: setup
	$(PY) bench/bench_lab.py

# The full-kernel checks in a qemu VM (long, fetches packages; not part of .ci/run): vm/run-tests.sh.
# VM_ARGS="tests/seed -k kprobe" replaces the default selection (-m full_kernel tests, chapters 09-12).
vm-test:
	@bash vm/run-tests.sh $(VM_ARGS)
