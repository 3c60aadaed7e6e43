# Two commands: `make demo` (set up + the offline default run) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
COWEST := $(VENV)/bin/cowest
DEMO_RECIPE ?= recipes/demo.yaml

.PHONY: demo test test-deps setup assets bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU wheel first: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

assets: setup
	$(COWEST) models install

demo: assets
	$(COWEST) run $(DEMO_RECIPE)

test-deps:
	scripts/install-test-deps.sh

test: assets test-deps
	$(PY) -m pytest -q

bench: assets
	$(PY) bench/bench_generation.py

clean:
	rm -rf $(VENV) runs
