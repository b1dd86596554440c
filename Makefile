# Two commands: `make dev` runs the product on its embedded defaults, `make test` runs every check
# (and `make call PROVIDER=twilio|vonage|connect` phones the running `make dev`).
# Both set up what they need (venv, pip, npm) first, so they work on a fresh machine.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
WORKER := $(VENV)/azure-worker
STAMP_WORKER := $(WORKER)/.installed
STAMP_NODE := node_modules/.installed
STAMP_CHROMIUM := $(VENV)/.chromium
PYTEST_ARGS ?=
# Test modules spread over workers, a module's tests on one (they share its devhost). The suite mostly
# waits on devhosts and subprocesses, so three workers on two cores halve its time.
PYTEST_WORKERS ?= 3

.PHONY: dev call test setup lint typecheck unit bench clean

setup: $(STAMP_PY) $(STAMP_WORKER) $(STAMP_NODE) $(STAMP_CHROMIUM)

$(STAMP_PY): requirements.txt requirements-dev.txt
	@echo "==> Python environment ($(VENV))"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --progress-bar off -r requirements-dev.txt
	@touch $@

$(STAMP_WORKER): requirements-worker.txt $(STAMP_PY)
	@echo "==> The Python worker's indexing code ($(WORKER))"
	@rm -rf $(WORKER)
	@$(PY) -m pip install --progress-bar off --no-deps --ignore-requires-python --target $(WORKER) -r requirements-worker.txt
	@touch $@

$(STAMP_NODE): package.json package-lock.json
	@echo "==> Azurite from npm (node_modules)"
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's chromium for the web page's e2e test (Playwright drives it; it never downloads a browser).
# Not fatal here, so `make dev` works where apt cannot: that test then fails saying chromium is missing.
$(STAMP_CHROMIUM): $(STAMP_PY)
	@if ! command -v chromium >/dev/null; then \
		echo "==> Debian's chromium (apt-get)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
			|| echo "chromium could not be installed: tests/e2e/test_web_page.py will fail"; \
	fi
	@if command -v chromium >/dev/null; then touch $@; fi

dev: setup
	@$(PY) -m devhost

PROVIDER ?= twilio
call: $(STAMP_PY)
	@$(PY) -m devhost.call --provider $(PROVIDER)

lint: $(STAMP_PY)
	@echo "==> ruff"
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

typecheck: $(STAMP_PY)
	@echo "==> mypy"
	@$(VENV)/bin/mypy

test: setup lint typecheck
	@echo "==> pytest"
	@$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; \
	exit $$status

unit: $(STAMP_PY) $(STAMP_WORKER)
	@$(PY) -m pytest tests/unit $(PYTEST_ARGS)

bench: setup
	@$(PY) bench/suite.py

clean:
	rm -rf $(VENV) node_modules .devhost .pytest_cache .mypy_cache .ruff_cache
