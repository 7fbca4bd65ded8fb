# Altar Trader Hub. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test migrate lint format bench procfile-check lock screenshots

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

install: $(INSTALLED) ## Create .venv and install the locked dependencies

$(INSTALLED): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

run: install ## Run locally: embedded PostgreSQL if DATABASE_URL is unset, migrations, first admin, app
	$(BIN)/python -m backend run

test: install ## Run the whole test suite against real PostgreSQL and Redis
	$(BIN)/python -m pytest

migrate: install ## Apply pending database migrations (also the Heroku release phase)
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

screenshots: install ## Screenshots of every dashboard view (desktop and 375 px) into docs/screenshots/, and its transfer sizes
	$(BIN)/python -m pytest tests/dashboard/screenshots.py -q -s -p no:cacheprovider

procfile-check: install ## Start the Procfile's release and web processes with honcho, check /health
	$(BIN)/python -m pytest tests/test_heroku_files.py -k procfile

lock: install ## Re-lock requirements*.txt from pyproject.toml
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml -o requirements.txt --python-version 3.11 -q
	$(BIN)/uv pip compile pyproject.toml --extra dev -o requirements-dev.txt --python-version 3.11 -q
