# Two entry points for a fresh machine with Python 3.11 and make: `make demo` and `make test`.
# Each creates .venv if missing and installs what it needs (re-installs when pyproject changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test lint typecheck unit bench record test-vcr emulator clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[all]"
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

test: $(VENV)/.dev-installed lint typecheck
	$(BIN)/python -m pytest --cov --cov-report=term -q

unit: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q tests/core

bench: $(VENV)/.dev-installed
	$(BIN)/python -m benchmarks

record: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q -m vcr --record-mode=rewrite

test-vcr: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q -m vcr --record-mode=none

emulator: $(VENV)/.demo-installed
	$(BIN)/dashscope-embed emulator --port 8123

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
