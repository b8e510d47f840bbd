# Set-up and main jobs. Everything runs inside .venv, created on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
OUT ?= runs/demo

.PHONY: demo test test-fast bench docs lint install clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files re-run the install whenever pyproject.toml changes.
$(VENV)/.installed-plot: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[plot]"
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@

install: $(VENV)/.installed-plot

demo: $(VENV)/.installed-plot
	$(BIN)/python -m rtrl.experiments.demo --out $(OUT)

# Tests run on every core (pytest-xdist); compiled programs are kept in .jax-cache/ between runs.
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -n auto

# The unit tier: everything but the end-to-end runs marked slow.
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -n auto -m "not slow"

$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	@touch $@

# The documentation site, into site/; --strict turns every warning (a broken link or reference)
# into an error.
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(VENV)/.installed-plot
	$(BIN)/python -m rtrl.bench cells

lint: $(BIN)/python
	$(BIN)/python -m pip install --quiet "ruff>=0.5"
	$(BIN)/ruff check src tests examples
	$(BIN)/ruff format --check src tests examples

clean:
	rm -rf $(VENV) runs .pytest_cache site
