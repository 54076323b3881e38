# Two commands on a fresh machine:  `make run` (API on SQLite) and `make test` (suite on PostgreSQL).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv run test lint typecheck format migrate seed soak clean bench

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

migrate: venv
	$(BIN)/python manage.py migrate --noinput

run: migrate
	@echo "Wallet API on http://$(HOST):$(PORT)/  (Swagger UI: http://$(HOST):$(PORT)/swagger/)"
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

seed: migrate
	$(BIN)/python manage.py seed_demo

test: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

# Fault injection, long load and API fuzzing on live servers (tests/soak, tests/security: -m soak).
soak: venv
	$(BIN)/pytest -m soak $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The application code against django-stubs and djangorestframework-stubs ([tool.mypy] in pyproject.toml).
typecheck: venv
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# API throughput against the database's own ceiling (docs/benchmarks.md); BENCH_ARGS="-s uniform -d 30".
bench: venv
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-* staticfiles
