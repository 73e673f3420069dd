# `make run` and `make test` set everything up first; `make setup` alone is idempotent and quick.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp

.PHONY: setup run test unit integration lint format bench soak clean

setup: $(STAMP)
	@scripts/ensure-chromium.sh $(BIN)/python

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "error: Python 3.11+ is needed; try: make PYTHON=python3.11 $(MAKECMDGOALS)"; exit 1; }
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); } \
		|| { echo "error: cannot create a virtualenv; on Debian/Ubuntu: apt-get install -y python3-venv"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: setup
	$(BIN)/spotify-tokener

test: setup
	$(BIN)/python -m pytest

unit: setup
	$(BIN)/python -m pytest tests/unit

integration: setup
	$(BIN)/python -m pytest tests/integration

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	@command -v wrk >/dev/null || scripts/ensure-apt.sh wrk
	$(BIN)/python bench/run.py

# Not part of `make test`: 300 forced refreshes with random faults; about seven minutes (RELIABILITY.md).
soak: setup
	$(BIN)/python bench/soak.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
