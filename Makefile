# Altar Trader Hub. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# what `make run` installs (the runtime set and the embedded PostgreSQL), and what development adds
RUN_INSTALLED := $(VENV)/.installed-run
DEV_INSTALLED := $(VENV)/.installed-dev

.DEFAULT_GOAL := help
.PHONY: help install run test migrate lint format bench bench-throughput bench-scale fuzz procfile-check lock screenshots
HOST ?= 127.0.0.1
PORT ?= 8000
SPECTRAL := tools/spectral/node_modules/.bin/spectral
FUZZ_EXAMPLES ?= 300
CONFIGS ?= 1000

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

install: $(DEV_INSTALLED) $(SPECTRAL) ## Install the development set into .venv: tests, lint, browser, fuzz (and Spectral, with npm)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_INSTALLED): requirements-local.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-local.txt
	@touch $@

$(DEV_INSTALLED): requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

$(SPECTRAL): tools/spectral/package.json tools/spectral/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tools/spectral --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the Spectral lint of the API documents will be skipped (install Node.js)"; fi

run: $(RUN_INSTALLED) ## Run locally (make run PORT=8001 HOST=0.0.0.0): embedded PostgreSQL if DATABASE_URL is unset, migrations, first admin, app
	$(BIN)/python -m backend run --host $(HOST) --port $(PORT)

test: install ## Run the whole test suite against real PostgreSQL and Redis
	$(BIN)/python -m pytest

migrate: $(RUN_INSTALLED) ## Apply pending database migrations (also the Heroku release phase)
	$(BIN)/python -m backend migrate

lint: install ## ruff check, ruff format --check, mypy strict on backend/
	$(BIN)/ruff check backend tests
	$(BIN)/ruff format --check backend tests
	$(BIN)/mypy

format: install ## Format and auto-fix the code
	$(BIN)/ruff format backend tests
	$(BIN)/ruff check --fix backend tests

bench: install ## Print benchmark figures
	$(BIN)/python -m tests.bench

bench-throughput: install ## Steady state of CONFIGS one-minute configs in one web process (make bench-throughput CONFIGS=10000), then arq with one and two workers: a minute spread, a burst (about 8 min; the burst alone: python -m tests.bench.bench_throughput --burst-only, 1 min)
	$(BIN)/python -m tests.bench.bench_throughput --configs $(CONFIGS)

bench-scale: install ## Candle storage at 100M candles: reads, coverage, size, compaction of a month, reads again, partition drop (6.5 min to load and read on a quiet 2-core machine, then the compaction: it prints its time; ~10 GB, wants 30 GB free)
	$(BIN)/python -m tests.bench.scale_storage

fuzz: install ## Fuzz the whole API from its OpenAPI document: every schemathesis check, all four phases (FUZZ_EXAMPLES per operation)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/web/test_fuzz.py -p no:cacheprovider -q -s -n 0

screenshots: install ## Screenshots of every dashboard view (desktop and 375 px) into docs/screenshots/, and its transfer sizes
	$(BIN)/python -m pytest tests/dashboard/screenshots.py -q -s -n 0 -p no:cacheprovider

procfile-check: install ## Start the Procfile's release and web processes with honcho, check /health
	$(BIN)/python -m pytest tests/test_heroku_files.py -k procfile

# The development set is resolved first and constrains the others: a package has one version in all three.
lock: $(BIN)/python ## Re-lock requirements.txt (runtime, Heroku), requirements-local.txt (make run), requirements-dev.txt
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev -o requirements-dev.txt --python-version 3.11 -q
	$(BIN)/uv pip compile pyproject.toml --extra local -c requirements-dev.txt -o requirements-local.txt --python-version 3.11 -q
	$(BIN)/uv pip compile pyproject.toml -c requirements-dev.txt -o requirements.txt --python-version 3.11 -q
