# Inflow developer commands. `make run` sets everything up and starts Inflow;
# `make test` runs the checks CI runs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint format migrate services chromium docker-env bench clean-venv

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

.env:
	$(PYTHON) scripts/write_dotenv.py .env

# Settings for docker-compose.yml, with random keys, and the database container's own
# docker/postgres.env (see README.md).
docker-env:
	$(PYTHON) scripts/write_dotenv.py --docker docker/.env

services:
	scripts/ensure_services.sh
	scripts/install_pgvector.sh

# Debian's Chromium, for the browser tests only (`make run` does not need it).
chromium:
	scripts/install_chromium.sh

# Everything `make run` needs: venv, .env, services, the database, its schema, the node
# type catalog and the demo admin.
install: $(STAMP) .env services
	$(PY) scripts/create_database.py
	$(PY) manage.py migrate --no-input
	$(PY) manage.py sync_node_types
	$(PY) manage.py ensure_demo_admin

run: install
	scripts/run.sh

migrate: $(STAMP) .env
	$(PY) manage.py migrate --no-input

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# check --deploy runs with production-like values: DEBUG off and real-looking secrets.
DEPLOY_ENV := DEBUG=false ALLOWED_HOSTS=inflow.example.com \
	SECRET_KEY=ci-$$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n') \
	PGCRYPTO_KEY=ci-$$(head -c 32 /dev/urandom | base64 | tr -d '/+=\n') \
	BLIND_INDEX_KEY=ci-$$(head -c 32 /dev/urandom | base64 | tr -d '/+=\n') \
	META_APP_SECRET=ci-$$(head -c 32 /dev/urandom | base64 | tr -d '/+=\n') \
	META_VERIFY_TOKEN=ci-$$(head -c 16 /dev/urandom | base64 | tr -d '/+=\n')

# The tests need no developer database (pytest-django creates test_<name> itself); without
# one, makemigrations only warns that it cannot compare the migration history with it.
test: $(STAMP) .env services chromium lint
	$(PY) -W "ignore:Got an error checking a consistent migration history:RuntimeWarning" \
		manage.py makemigrations --check --dry-run
	env $(DEPLOY_ENV) $(PY) manage.py check --deploy --fail-level WARNING
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: install
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
