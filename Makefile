# Set-up and entry points. Every target creates or reuses .venv and installs from this repo's files.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build of torch on this kind of machine; on a GPU box set TORCH_SPEC to the build you want.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: venv demo test lint bench-deps clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

## The main job: the bundled demo study on SmolLM2-135M-Instruct (fetched once into a user cache).
demo: $(STAMP)
	$(BIN)/prunescope demo --out $(DEMO_OUT)

## The test suite (unit, integration, TUI, real-terminal smoke test).
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

## Linter, formatter check and type check (ruff, mypy; config in pyproject.toml); `ruff format .` fixes the formatting.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Extra packages the benchmarks need (lm-eval); bench/README.md has each benchmark's command.
bench-deps: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,bench]"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
