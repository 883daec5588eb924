# Set-up and entry points. Every target creates or reuses .venv and installs from this repo's files.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build of torch on this kind of machine; on a GPU box set TORCH_SPEC to the build you want.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed
DEMO_OUT ?= runs/demo
# pip prints errors only, so a failed install stands out; its warnings (about the machine's pip
# configuration, third-party packages, setuptools' editable-install notice) are not actionable here.
# `make venv INSTALL_FLAGS=-q` shows them. (Not PIP_*: pip reads those from the environment.)
INSTALL_FLAGS ?= -qq

.PHONY: venv demo test lint bench-deps clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(INSTALL_FLAGS) --upgrade pip
	$(BIN)/python -m pip install $(INSTALL_FLAGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install $(INSTALL_FLAGS) -e ".[dev]"
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
	$(BIN)/python -m pip install $(INSTALL_FLAGS) -e ".[dev,bench]"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
