# Two commands: `make demo` (set up + the offline default run) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
COWEST := $(VENV)/bin/cowest
DEMO_RECIPE ?= recipes/demo.yaml

.PHONY: demo test test-deps setup assets bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The exact versions the tests ran on (constraints.txt); pyproject.toml states only lower bounds.
	# The CPU wheel first: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q --no-compile -c constraints.txt torch
	$(PY) -m pip install -q --no-compile -c constraints.txt -e '.[test]'
	# Byte-compiled on every core (pip compiles on one; set-up took 40-48 s this way against 50-68 s); files for newer
	# Pythons (torch's own tests) cannot compile and are never imported, so their failures are not errors.
	$(PY) -m compileall -q -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null || true
	touch $@

setup: $(VENV)/.installed

assets: setup
	$(COWEST) models install

demo: assets
	$(COWEST) run $(DEMO_RECIPE)

test-deps:
	scripts/install-test-deps.sh

test: assets test-deps
	$(PY) -m pytest -q --durations=15

bench: assets
	$(PY) bench/bench_generation.py

clean:
	rm -rf $(VENV) runs
