# Dev tasks. CI (.ci/run) calls the same targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: venv dev demo test lint typecheck docs unit integration bench grafana clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(VENV)/.installed-examples: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[examples]'
	touch $@

venv: $(BIN)/python
dev: $(STAMP)

## make demo: the project's main job on embedded defaults
demo: $(VENV)/.installed-examples
	$(BIN)/modelmon demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

## make docs: the manual in docs/, built by MkDocs in strict mode (a broken link fails)
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

unit: $(STAMP)
	$(BIN)/python -m pytest --doctest-modules src/modelmon $(PYTEST_ARGS)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

## make test: lint, type check and the whole test suite (with the docstring examples)
test: lint typecheck docs
	$(BIN)/python -m pytest --doctest-modules src/modelmon $(PYTEST_ARGS)
	$(BIN)/python -m pytest tests $(PYTEST_ARGS)

grafana: $(STAMP)
	$(BIN)/modelmon grafana export grafana

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
