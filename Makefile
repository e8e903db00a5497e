# Two commands: `make demo` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# The exact versions CI tests, installed as constraints: pyproject.toml says what is supported.
LOCK := requirements.lock
# `make test` runs on this PostgreSQL when it answers and DATABASE_URL is not set.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
# torch stays at the CPU build these machines carry on disk (others download gigabytes).
TORCH_VERSION := 2.13.0

.PHONY: demo test lint format install install-dev lock clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The stamps make re-runs instant; they are rebuilt when pyproject.toml or the lock changes.
$(VENV)/.installed-base: pyproject.toml $(LOCK) | $(PY)
	$(PIP) install --quiet -c $(LOCK) -e '.[demo]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(LOCK) | $(PY)
	$(PIP) install --quiet -c $(LOCK) -e '.[gpu,dev]'
	touch $@ $(VENV)/.installed-base

# A secret key of this checkout's own, made once: settings read .env (which git ignores), and the
# app refuses to start without a key unless DEBUG is on.
.env: | $(PY)
	$(PY) -c "import secrets; print('SECRET_KEY=' + secrets.token_urlsafe(50))" > $@

install: $(VENV)/.installed-base .env
install-dev: $(VENV)/.installed-dev .env

demo: install
	$(PY) manage.py demo

# DATABASE_URL when set; else PostgreSQL at TEST_DATABASE_URL when it answers; else SQLite, which
# skips the PostgreSQL-only tests (the hot path, the real worker processes) and says so.
test: install-dev
	$(VENV)/bin/ruff check .
	@if [ -n "$$DATABASE_URL" ]; then \
		url="$$DATABASE_URL"; \
	elif $(PY) -c "import psycopg, sys; psycopg.connect(sys.argv[1], connect_timeout=3).close()" \
			"$(TEST_DATABASE_URL)" 2>/dev/null; then \
		url="$(TEST_DATABASE_URL)"; \
	else \
		url=""; \
		echo "make test: no PostgreSQL at $(TEST_DATABASE_URL): running on SQLite," \
			"the PostgreSQL-only tests are SKIPPED (start PostgreSQL or set DATABASE_URL)"; \
	fi; \
	echo "make test: database $${url:-SQLite}"; \
	if [ -n "$$url" ]; then export DATABASE_URL="$$url"; else unset DATABASE_URL; fi; \
	$(VENV)/bin/pytest $(PYTEST_ARGS); status=$$?; \
	echo "make test: ran on $${url:-SQLite}"; exit $$status

# Rebuild the lock after changing the dependencies in pyproject.toml (uv, from PyPI).
lock: | $(PY)
	$(PIP) install --quiet uv
	echo "torch==$(TORCH_VERSION)" | $(VENV)/bin/uv pip compile pyproject.toml --all-extras \
		--universal --python-version 3.11 --constraint - --custom-compile-command "make lock" --quiet -o $(LOCK)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) db.sqlite3 media .broker staticfiles
