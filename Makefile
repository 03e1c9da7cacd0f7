# Dev tasks. CI (.ci/run) calls the same targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
PYTEST_ARGS ?=
# Coverage of the test run in this process (the floor is fail_under in pyproject.toml;
# servers the integration tests start in subprocesses are not measured).
COVERAGE ?= --cov=modelmon --cov-report=term:skip-covered

.PHONY: venv dev demo test lint typecheck docs unit integration bench bench-quick grafana clean

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

## make test: lint, type check, docs, the whole test suite with coverage (and the docstring examples), bench-quick
test: lint typecheck docs
	$(BIN)/python -m pytest --doctest-modules src/modelmon $(PYTEST_ARGS)
	$(BIN)/python -m pytest tests $(COVERAGE) $(PYTEST_ARGS)
	$(BIN)/python benchmarks/run.py --quick

grafana: $(STAMP)
	$(BIN)/modelmon grafana export grafana

## make bench: the peers into their own venv, every benchmark, then docs/benchmarks.md
PEERS := benchmarks/.venv-peers
$(PEERS)/.installed: pyproject.toml benchmarks/requirements-peers.txt
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS)/bin/python -m pip install --quiet -e . -r benchmarks/requirements-peers.txt
	touch $@

bench: $(PEERS)/.installed
	$(PEERS)/bin/python benchmarks/run.py

## make bench-quick: every benchmark script at tiny sizes (checks they run; asserts no time)
bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
