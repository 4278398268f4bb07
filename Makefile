# Two entry points for a fresh machine with Python 3.11 and make: `make demo` and `make test`.
# Each creates .venv if missing and installs what it needs (re-installs when pyproject changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

# mkdocs-material prints a banner about its successor on every build; keep `make test` quiet.
export NO_MKDOCS_2_WARNING := 1

.PHONY: demo test lint typecheck docs docs-strict docs-serve unit bench record test-vcr emulator mutate clean

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

# Mutation testing (mutmut; slow, not part of `make test`). mutmut wants the package under src/,
# so the core is staged in build/mutate/ (config: [tool.mutmut] in pyproject.toml). MUTATE_JOBS
# caps the worker processes; MUTANTS picks some, e.g. MUTANTS='dashscope_embed._wire.*'.
# Prints killed/total per module (a timeout counts as killed); survivors: build/mutate/results.txt,
# a survivor's diff: cd build/mutate && mutmut show NAME.
MUTATE_DIR  := build/mutate
MUTATE_JOBS ?= 2
MUTANTS     ?=

define MUTATE_SUMMARY
import collections, re, sys
counts = collections.defaultdict(collections.Counter)
for line in sys.stdin:
    m = re.match(r"\s*(dashscope_embed\.[\w.]+?)\.x\S*__mutmut_\d+: (.+)", line)
    if m:
        counts[m[1]][m[2].strip()] += 1
for module, c in sorted(counts.items()):
    total = sum(c.values()) - c["skipped"] - c["not checked"]
    killed = c["killed"] + c["timeout"]
    rest = ", ".join(f"{n} {s}" for s, n in sorted(c.items()) if s not in ("killed", "timeout"))
    print(f"{module:32} {killed:4}/{total:<4} killed {100 * killed / max(total, 1):5.1f}%  {rest}")
endef
export MUTATE_SUMMARY

mutate: $(VENV)/.dev-installed
	rm -rf $(MUTATE_DIR) && mkdir -p $(MUTATE_DIR)/src
	cp -R shared/dashscope_embed $(MUTATE_DIR)/src/
	cp -R tests pyproject.toml $(MUTATE_DIR)/
	cd $(MUTATE_DIR) && $(abspath $(BIN))/mutmut run --max-children $(MUTATE_JOBS) $(MUTANTS) \
		> run.log 2>&1 || (tail -c 3000 run.log; exit 1)
	cd $(MUTATE_DIR) && $(abspath $(BIN))/mutmut results --all true > results.txt
	$(abspath $(BIN))/python -c "$$MUTATE_SUMMARY" < $(MUTATE_DIR)/results.txt

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache .coverage
