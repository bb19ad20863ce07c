# Set-up-free entry points: each target creates .venv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch; override for CUDA, e.g. make setup TORCH="torch==2.13.0 --index-url ..."
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow lint

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[all]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/swirl demo

test: $(STAMP)
	PYTHONHASHSEED=0 $(BIN)/python -m pytest -q

test-slow: $(STAMP)
	PYTHONHASHSEED=0 $(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check swirl_envs swirl_agents benchmarks examples tests
