# dlcompat: the two commands of the quick start, and what they stand on.
#   make run   - build the main environment and run the default study (quick preset, embedded digits)
#   make test  - build it with the test tools and run the test suite (what CI runs)
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.dlcompat-setup

.PHONY: setup envs run test lint bench clean

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c

$(STAMP): envs/main.txt pyproject.toml scripts/system-deps.sh web/package.json web/package-lock.json
	@echo "setup (once): system packages, the main environment $(VENV), the web runtimes"
	bash scripts/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# the toolchain environments (standard library only) build beside the main one, not after it
	@PYTHONPATH=src $(PYTHON) -m dlcompat.envs --log $(VENV)/envs-install.log & toolchains=$$!; \
	$(BIN)/python -m pip install --progress-bar off -r envs/main.txt 2>&1 \
	  | $(BIN)/python scripts/pip-progress "main environment (PyTorch, TensorFlow, JAX, ONNX Runtime, ...)" \
	    $(VENV)/pip-install.log; \
	wait $$toolchains
	$(BIN)/python -m pip install -q --no-deps -e .
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/dlcompat run

$(VENV)/.dlcompat-test: $(STAMP) envs/test.txt
	$(BIN)/python -m pip install -q -r envs/test.txt
	touch $@

# every toolchain environment (theano, onnx2torch, onnx2tf, tfjs, ...): built once under ~/.cache/dlcompat/envs
envs: setup
	$(BIN)/dlcompat env sync

# the PostgreSQL tests start a throwaway server of their own: scripts/postgres.sh installs Debian's if missing
test: $(VENV)/.dlcompat-test envs
	bash scripts/postgres.sh
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/quick_study.py

clean:
	rm -rf dlcompat-out
