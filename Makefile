# Every target works on a fresh clone with only Python and make present.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The benchmark peers (gevent, eventlet, uvloop, ...) live in an environment of their own,
# so the test environment is what a user's is.
BENCH_VENV := .venv-bench
LINTED := nettools tests recipes bench

.PHONY: install test lint bench demo clean system-deps

# The package alone: what a user installs, and all that the demo needs.
$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

# Plus the test tools, real clients and frameworks.
$(VENV)/.test: $(VENV)/.runtime
	$(BIN)/pip install -q -e '.[test]'
	touch $@

$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q -e '.[test,bench]'
	touch $@

install: $(VENV)/.test

lint: $(VENV)/.test
	$(BIN)/ruff check $(LINTED)
	$(BIN)/lint-imports --no-cache

# Real programs the tests drive: headless Chromium (browser tests), PostgreSQL
# (db_pool), wrk (the gunicorn worker).  One apt-get install of what is missing.
system-deps:
	@MISSING=""; \
	command -v chromium >/dev/null || MISSING="$$MISSING chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || MISSING="$$MISSING postgresql"; \
	command -v wrk >/dev/null || MISSING="$$MISSING wrk"; \
	[ -z "$$MISSING" ] || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$MISSING >/dev/null; }

test: lint system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench $(BENCH_ARGS)

demo: $(VENV)/.runtime
	$(BIN)/python recipes/demo.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) build *.egg-info .pytest_cache .ruff_cache
