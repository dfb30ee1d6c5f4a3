# One entry point for developers and CI. `make check` on a fresh clone creates the venv,
# installs seedvault with its test extra, fetches the pinned test data once, then runs
# lint + types + tests. `.ci/run` calls exactly `make check`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export SEEDVAULT_TESTDATA ?= $(CURDIR)/.cache/testdata
MODEL ?= $(SEEDVAULT_TESTDATA)/all-MiniLM-L6-v2

.PHONY: setup testdata modeldata lint types test check run demo bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

testdata: setup
	$(BIN)/python dev/testdata.py "$(SEEDVAULT_TESTDATA)"

modeldata: setup  # only the MiniLM repository (no llama.cpp build): enough for demo and bench
	$(BIN)/python dev/testdata.py --minilm-only "$(SEEDVAULT_TESTDATA)"

LINTED := $(wildcard daemon tests bench dev)

lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

types: setup
	$(BIN)/mypy

test: setup testdata
	$(BIN)/pytest

check: testdata lint types test

# The quick start's main job: the daemon on the embedded default (fs vault + SQLite catalog in
# the repository root), watching one small public model and serving it on 127.0.0.1:8470.
run: setup
	$(BIN)/seedvault run --config config/quickstart.toml

# Offline demo: archive a model directory into ./vault (default: the real
# all-MiniLM-L6-v2 repository from the test data) and list what the vault holds.
demo: modeldata
	$(BIN)/seedvault snapshot "dir:$(MODEL)"
	$(BIN)/seedvault ls

bench: modeldata
	$(BIN)/python bench/vault.py
	$(BIN)/python bench/hf_ingest.py
	$(BIN)/python bench/serve.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
