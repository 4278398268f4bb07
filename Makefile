# Two entry points for a fresh machine with Python 3.11 and make: `make demo` and `make test`.
# Each creates .venv if missing and installs what it needs (re-installs when pyproject changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

# mkdocs-material prints a banner about its successor on every build; keep `make test` quiet.
export NO_MKDOCS_2_WARNING := 1

.PHONY: demo test lint typecheck docs docs-strict docs-serve unit bench record test-vcr emulator clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The demo needs only the core, the two frameworks and Pillow (the `demo` extra), not the
# vector stores, pyarrow or Ray that `make test` installs.
$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[demo]"
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[dev]"
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(BIN)/python examples/demo.py

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

# The documentation site (docs/ + mkdocs.yml) into site/. Builds offline.
docs: $(VENV)/.dev-installed
	$(BIN)/mkdocs build

# What `make test` runs: broken links, anchors and API references fail the build.
docs-strict: $(VENV)/.dev-installed
	$(BIN)/mkdocs build --strict --site-dir $(VENV)/site-strict

docs-serve: $(VENV)/.dev-installed
	$(BIN)/mkdocs serve

test: $(VENV)/.dev-installed lint typecheck docs-strict
	$(BIN)/python -m pytest --cov --cov-report=term -q

unit: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q tests/core

bench: $(VENV)/.dev-installed
	$(BIN)/python -m benchmarks --write benchmarks/results

record: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q -m vcr --record-mode=rewrite

test-vcr: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q -m vcr --record-mode=none

emulator: $(VENV)/.demo-installed
	$(BIN)/dashscope-embed emulator --port 8123

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache .coverage
