# Two entry points for a fresh machine with Python 3.11 and make: `make demo` and `make test`.
# Each creates .venv if missing and installs what it needs (re-installs when pyproject changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test lint typecheck unit bench record test-vcr emulator mutate clean

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

# Mutation testing (mutmut; slow, not part of `make test`). mutmut wants the package under src/,
# so the core is staged in build/mutate/ (config: [tool.mutmut] in pyproject.toml). MUTATE_JOBS
# caps the worker processes; MUTANTS picks some, e.g. MUTANTS='dashscope_embed._wire.*'.
MUTATE_DIR  := build/mutate
MUTATE_JOBS ?= 2
MUTANTS     ?=

mutate: $(VENV)/.dev-installed
	rm -rf $(MUTATE_DIR) && mkdir -p $(MUTATE_DIR)/src
	cp -R shared/dashscope_embed $(MUTATE_DIR)/src/
	cp -R tests pyproject.toml $(MUTATE_DIR)/
	cd $(MUTATE_DIR) && $(abspath $(BIN))/mutmut run --max-children $(MUTATE_JOBS) $(MUTANTS) > run.log 2>&1 \
		|| (tail -40 run.log; exit 1)
	cd $(MUTATE_DIR) && $(abspath $(BIN))/mutmut results --all true > results.txt
	@awk -F'[.:]' '/: /{ m=$$2"."$$3; if ($$3 ~ /^x_|^x\u01c1/) m=$$2; \
		n[m]++; if ($$NF ~ /killed/) k[m]++; else if ($$NF !~ /skipped/) s[m]=s[m]" "$$0 } \
		END { for (m in n) printf "%-28s %4d/%-4d killed (%.1f%%)\n", m, k[m], n[m], 100*k[m]/n[m] }' \
		$(MUTATE_DIR)/results.txt | sort
	@echo "survivors: grep -v killed $(MUTATE_DIR)/results.txt; diff: cd $(MUTATE_DIR) && mutmut show NAME"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
