# Supervision Hub — the few targets a developer and CI use. `make` or `make help` lists them.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
VENV_BIN    := $(VENV)/bin
STAMP       := $(VENV)/.installed
HOST        ?= 127.0.0.1
PORT        ?= 8080
PYTEST_ARGS ?=
BENCH_ARGS  ?=
DRILLS_ARGS ?=
PG_HOST     := 127.0.0.1
PG_PORT     := 5432

.PHONY: help venv run pg-up test lint check migrate openapi scheduler clean bench bench-smoke drills

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

venv: $(STAMP) ## Create .venv and install the project (only when pyproject.toml changed)

$(VENV_BIN)/python:
	@if command -v python3.11 >/dev/null 2>&1; then python3.11 -m venv $(VENV); \
	else python3 -m venv $(VENV); fi

# The stamp is newer than pyproject.toml once installed, so later calls do nothing.
$(STAMP): pyproject.toml | $(VENV_BIN)/python
	$(VENV_BIN)/pip install -q -e '.[dev]'
	@touch $@

run: venv ## Serve the hub on HOST:PORT (migrates the embedded SQLite database first)
	$(VENV_BIN)/supervision-hub serve --host $(HOST) --port $(PORT)

pg-up: ## Make sure the local PostgreSQL at 127.0.0.1:5432 accepts connections
	@if command -v pg_isready >/dev/null 2>&1 && pg_isready -h $(PG_HOST) -p $(PG_PORT) -q; then \
		echo "pg-up: PostgreSQL is accepting connections on $(PG_HOST):$(PG_PORT)"; exit 0; \
	fi; \
	if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then \
		echo "pg-up: pg_ctlcluster/pg_isready not found; start PostgreSQL on $(PG_HOST):$(PG_PORT) yourself" \
		     "(PostgreSQL tests fail without it unless SUPHUB_TEST_SKIP_PG=1)"; \
		exit 0; \
	fi; \
	version=$$(ls /etc/postgresql | sort -V | tail -n 1); \
	echo "pg-up: starting PostgreSQL cluster $$version/main"; \
	pg_ctlcluster --skip-systemctl-redirect $$version main start || true; \
	for _ in $$(seq 30); do \
		if pg_isready -h $(PG_HOST) -p $(PG_PORT) -q; then \
			echo "pg-up: PostgreSQL is accepting connections on $(PG_HOST):$(PG_PORT)"; exit 0; \
		fi; \
		sleep 1; \
	done; \
	echo "pg-up: PostgreSQL did not accept connections on $(PG_HOST):$(PG_PORT) within 30 s"; \
	if [[ "$${SUPHUB_TEST_SKIP_PG:-}" == "1" ]]; then exit 0; fi; \
	exit 1

test: venv pg-up ## Run the tests (extra pytest arguments: PYTEST_ARGS="-k ingest -x")
	$(VENV_BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: venv ## ruff check, then mypy --strict
	$(VENV_BIN)/ruff check app tests
	$(VENV_BIN)/mypy

check: lint test ## lint + test

migrate: venv ## Apply the database migrations (SUPHUB_DATABASE_URL, default embedded SQLite)
	$(VENV_BIN)/supervision-hub migrate

openapi: venv ## Regenerate openapi/openapi.json from the code
	$(VENV_BIN)/python scripts/export_openapi.py

scheduler: venv ## Run the collector scheduler as its own process
	$(VENV_BIN)/supervision-hub scheduler

# Never touches var/: it holds the server key, without which stored client secrets are lost.
clean: ## Remove tool caches and __pycache__ directories (keeps var/ and .venv/)
	find . \( -path ./$(VENV) -o -path ./var -o -path ./.git \) -prune -o -type d \
		\( -name __pycache__ -o -name .pytest_cache -o -name .mypy_cache -o -name .ruff_cache \) \
		-prune -exec rm -rf {} +

bench: venv pg-up ## The speed goals on SQLite and PostgreSQL at full size (about an hour; bench/README.md)
	$(VENV_BIN)/python bench/run.py $(BENCH_ARGS)

bench-smoke: venv pg-up ## The same benchmarks at tiny sizes (about a minute; never fails on a timing)
	$(VENV_BIN)/python bench/run.py --smoke $(BENCH_ARGS)

# Not part of `make test`: minutes of load, kills and fuzzing (README "Reliability").
drills: venv pg-up ## Reliability drills: kill -9, PostgreSQL outage, abuse, schemathesis (DRILLS_ARGS="--quick kill9")
	$(VENV_BIN)/python -m tests.drills.run $(DRILLS_ARGS)
