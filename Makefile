# Every target works on a fresh clone with only Python and make present.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The benchmark peers (gevent, eventlet, uvloop, ...) live in an environment of their own,
# so the test environment is what a user's is.
BENCH_VENV := .venv-bench
LINTED := nettools tests recipes bench

.PHONY: install test lint bench bench-table demo clean system-deps

# The package alone: what a user installs, and all that the demo needs.
$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

# Installs Debian packages (as root, or through sudo).
APT_INSTALL = SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends

# Plus the test tools, real clients and frameworks (PyICU compiles against ICU).
$(VENV)/.test: $(VENV)/.runtime
	@{ pkg-config --exists icu-i18n && command -v c++ >/dev/null; } || { \
	  $(APT_INSTALL) libicu-dev pkg-config g++ >/dev/null; }
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# Debian packages the bench environment builds against: libev's headers for bjoern.
BENCH_DEBS := libev-dev
$(BENCH_VENV)/.installed: pyproject.toml
	@missing=$$(for deb in $(BENCH_DEBS); do dpkg -s $$deb >/dev/null 2>&1 || echo $$deb; done); \
	[ -z "$$missing" ] || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    $$missing >/dev/null; }
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q -e '.[test,bench]'
	touch $@

install: $(VENV)/.test

lint: $(VENV)/.test
	$(BIN)/ruff check $(LINTED)
	$(BIN)/lint-imports --no-cache

# Real programs the tests drive: headless Chromium for the browser tests, npm for the
# socket.io JavaScript client, redis-server as the Socket.IO message queue and the crawl's
# shared state, HAProxy for the forwarder's PROXY protocol tests, a Prometheus server that
# scrapes --metrics, systemd-socket-activate for socket activation, the shells whose
# completion scripts are tried, PostgreSQL for db_pool (pg_ctlcluster comes with the
# server's packages; the test runs initdb from its folder) and wrk for the gunicorn worker.
# One apt-get install of whatever is missing (program:package pairs).
SYSTEM_DEPS := chromium:chromium npm:npm redis-server:redis-server haproxy:haproxy \
	prometheus:prometheus systemd-socket-activate:systemd fish:fish zsh:zsh \
	pg_ctlcluster:postgresql wrk:wrk
system-deps:
	@missing=$$(for dep in $(SYSTEM_DEPS); do \
	  command -v $${dep%%:*} >/dev/null || echo $${dep#*:}; done); \
	[ -z "$$missing" ] || { $(APT_INSTALL) $$missing >/dev/null; }

test: lint system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench $(BENCH_ARGS)

# The README's benchmark table, rewritten from the last `make bench` run's results.
bench-table: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench.readme

demo: $(VENV)/.runtime
	$(BIN)/python recipes/demo.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) build *.egg-info .pytest_cache .ruff_cache
