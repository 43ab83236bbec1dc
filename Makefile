# settleguard: the two commands users need are `make demo` and `make test`.
# Everything installs into .venv from the project's own files; nothing is done by hand.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= var/demo

.PHONY: help setup compiled demo test lint pytest services services-stop clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: $(VENV)/.installed  ## create .venv and install settleguard with its dev tools

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	env -u SETTLEGUARD_COMPILE $(BIN)/pip install --quiet --editable '.[dev]'
	touch $@

compiled: setup  ## build the compiled detection core (mypyc) into var/compiled: PYTHONPATH=var/compiled
	scripts/build_compiled.sh var/compiled

demo: setup  ## simulate a stream and run it through the pipeline (no Kafka or Redis needed)
	$(BIN)/settleguard simulate --outlets 60 --days 21 --seed 7 --malformed 0.0005 --out $(DEMO_DIR)
	$(BIN)/settleguard replay $(DEMO_DIR)/events.jsonl --alerts $(DEMO_DIR)/alerts.jsonl \
		--dead-letter $(DEMO_DIR)/dead-letter.jsonl --live
	$(BIN)/settleguard evaluate $(DEMO_DIR)/events.jsonl $(DEMO_DIR)/labels.jsonl \
		$(DEMO_DIR)/alerts.jsonl

test: setup lint pytest  ## lint, type-check, start the local services, run every test

lint: setup  ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

pytest: setup  ## the test suite (tests start the services they need via scripts/services.sh)
	$(BIN)/python -m pytest

services: ## start Kafka, Redis and Prometheus on 127.0.0.1
	scripts/services.sh start all

services-stop: ## stop them
	scripts/services.sh stop all

clean:  ## remove local state (service data, demo output); keeps .venv and caches
	scripts/services.sh stop all || true
	rm -rf var
