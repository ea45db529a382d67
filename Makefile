# coinstream: `make run` sets everything up and runs the collector; `make test` runs
# the whole test suite against a real local Kafka broker.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: setup kafka-fetch kafka-start kafka-stop topics run status live test bench clean

setup: $(INSTALLED) kafka-fetch

# Re-install when the package metadata changes.
$(INSTALLED): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

kafka-fetch:
	kafka/kafka-local.sh fetch

# Start the bundled broker unless the config points at an existing cluster
# (kafka.local_broker: false), or it already runs.
kafka-start: setup
	@port="$$($(PY) -m shared.config local-broker-port)" || exit $$?; \
	if [[ -z "$$port" ]]; then echo "kafka: using the configured cluster"; \
	elif KAFKA_PORT=$$port kafka/kafka-local.sh status >/dev/null 2>&1; then echo "kafka: local broker already running on 127.0.0.1:$$port"; \
	else KAFKA_PORT=$$port KAFKA_CONTROLLER_PORT=$$((port + 1)) kafka/kafka-local.sh start >/dev/null; fi

kafka-stop:
	kafka/kafka-local.sh stop

topics: kafka-start
	$(PY) -m shared.topics

run: topics
	mkdir -p logs run
	exec $(VENV)/bin/supervisord -c supervisord.conf

# One table of the ten workers; exits non-zero when an enabled one is unhealthy.
status: $(INSTALLED)
	$(PY) -m shared.status $(ARGS)

# Latest tickers, redrawn in place; e.g. make live ARGS="--base BTC". Ctrl-C quits.
live: $(INSTALLED)
	$(PY) -m shared.live $(ARGS)

# The speed guard compares timings, so it runs alone first; then everything else, in
# three processes (see setup.cfg).
test: setup
	$(PY) -m pytest -n 0 tests/unit/test_bench_guard.py
	$(PY) -m pytest --ignore=tests/unit/test_bench_guard.py

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache logs run spool
