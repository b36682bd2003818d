# Set-up is two commands: `make run` (the main job) and `make test`.
# TORCH is the torch requirement: users get the normal wheel; CI pins the on-disk CPU build:
#   make test TORCH=torch==2.13.0
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch
PY      = $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install test test-slow run bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

# The main job: RegBench in-context learning at 100 training automata, Memory Mosaic vs matched transformer,
# a stated reduced budget (offline, minutes on 2 CPU cores). `--budget full` runs the paper protocol.
run: $(VENV)/.installed
	$(VENV)/bin/mosaic icl --task regbench --compare --envs 100 --budget demo --out runs/regbench-demo

test: $(VENV)/.installed
	$(PY) -m ruff check src tests examples
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

bench: $(VENV)/.installed
	mkdir -p runs
	$(VENV)/bin/mosaic bench --out runs/bench.json

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
