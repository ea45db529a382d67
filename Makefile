# coinstream: `make run` sets everything up and runs the collector; `make test` runs
# the whole test suite against a real local Kafka broker.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: setup kafka-fetch kafka-stop topics run demo status live test bench clean

setup: $(INSTALLED) kafka-fetch

# Re-install when the package metadata changes.
$(INSTALLED): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

kafka-fetch:
	kafka/kafka-local.sh fetch

kafka-stop:
	kafka/kafka-local.sh stop

topics: setup
	$(VENV)/bin/coinstream topics

# The bundled broker (unless the config points at an existing cluster), the topics,
# then supervisord in the foreground: see coinstream/run.py.
run: setup
	exec $(VENV)/bin/coinstream run

# The ten workers against the exchange simulator, with a broker of their own; Ctrl-C
# stops it all: see coinstream/demo.py.
demo: setup
	exec $(VENV)/bin/coinstream demo $(ARGS)

# One table of the ten workers; exits non-zero when an enabled one is unhealthy, and
# make then adds its own "Error 1" line: scripts call .venv/bin/coinstream status.
status: $(INSTALLED)
	$(VENV)/bin/coinstream status $(ARGS)

# Latest tickers, redrawn in place; e.g. make live ARGS="--base BTC", or one order book:
# make live ARGS="--book upbit:BTC-KRW". Ctrl-C quits: the
# view exits 0, make (interrupted too) 130.
live: $(INSTALLED)
	$(VENV)/bin/coinstream live $(ARGS)

# The speed guard compares timings, so it runs alone first; then everything else, in
# three processes (see setup.cfg).
test: setup
	$(PY) -m pytest -n 0 tests/unit/test_bench_guard.py
	$(PY) -m pytest --ignore=tests/unit/test_bench_guard.py

bench: setup
	$(PY) -m bench

# logs/ and run/ stay, emptied: supervisord.conf needs them.
clean:
	rm -rf $(VENV) .venv-3.13 *.egg-info .pytest_cache spool logs/* run/*
