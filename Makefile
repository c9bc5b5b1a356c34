# The lab's two commands: `make lab` (set up, then JupyterLab) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8888

.PHONY: lab test setup lint unit live notebooks bench

setup:
	@bash scripts/setup-system.sh

lab: setup
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --port=$(PORT) --no-browser --allow-root \
		--ServerApp.root_dir=notebooks

test: setup
	@bash scripts/run-tests.sh

bench: setup
	$(PY) bench/bench_lab.py
