# Two commands on a fresh machine:  `make run` (API on SQLite) and `make test` (suite on PostgreSQL).
# `make check` is the quick loop while working: the in-process tests on a reused test database.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Tests that leave the process (tests/conftest.py sets the markers); `make check` leaves them to `make test`.
OUT_OF_PROCESS := live or broker or deploy or browser or soak

.PHONY: venv dev run test test-setup check lint typecheck format migrate seed soak clean bench

# Two stamps: running the API needs requirements.txt only; tests and tools need requirements-dev.txt.
$(BIN)/.runtime: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(BIN)/.dev: $(BIN)/.runtime requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/.runtime

dev: $(BIN)/.dev

migrate: venv
	DJANGO_ENV=local $(BIN)/python manage.py migrate --noinput

run: migrate
	@echo "Wallet API on http://$(HOST):$(PORT)/  (Swagger UI: http://$(HOST):$(PORT)/swagger/)"
	DJANGO_ENV=local $(BIN)/python manage.py runserver $(HOST):$(PORT)

seed: migrate
	DJANGO_ENV=local $(BIN)/python manage.py seed_demo

# Services, newman and chromium, installed or started only when missing (scripts/test-setup.sh).
test-setup:
	scripts/test-setup.sh

# The whole suite, nothing deselected but the soak runs; CI runs exactly this (.ci/run).
test: dev test-setup lint
	$(BIN)/pytest $(PYTEST_ARGS)

# In-process tests only, on two workers with a kept test database each; PYTEST_ARGS=--lf reruns what
# failed last time.
check: dev
	scripts/services.sh
	$(BIN)/pytest --reuse-db -n 2 -m "not ($(OUT_OF_PROCESS))" $(PYTEST_ARGS)

# Fault injection, long load and API fuzzing on live servers (tests/soak, tests/security: -m soak).
soak: dev test-setup
	$(BIN)/pytest -m soak $(PYTEST_ARGS)

# Lint, format, types and the app layers (docs/architecture.md): part of `make test`.
lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The application code against django-stubs and djangorestframework-stubs ([tool.mypy] in pyproject.toml).
typecheck: dev
	$(BIN)/mypy

format: dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# API throughput against the database's own ceiling (docs/benchmarks.md); BENCH_ARGS="-s uniform -d 30".
bench: dev
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-* staticfiles
