# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint fuzz bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## run the demo origin + proxy and print a tour
	$(BIN)/edgeproxy demo

test: $(STAMP)  ## run the whole test suite
	$(BIN)/python -m pytest -q

lint: $(STAMP)  ## ruff and mypy, as configured in pyproject.toml (not part of make test or CI)
	$(BIN)/ruff check edgeproxy tests bench
	$(BIN)/mypy

fuzz: $(STAMP)  ## longer property-based fuzzing of the untrusted-input paths
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -m fuzz tests

bench: $(STAMP)
	$(BIN)/python -m bench run --scenario hit-2k --duration 10

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
