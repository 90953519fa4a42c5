# Hearth: `make up` sets up and runs Synapse + Hearth in the background; `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install up down restart status logs test lint bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# The CPU build of torch first, pinned: an open range would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

# SYNAPSE_DATABASE=postgresql://user@host:port/dbname puts Synapse on PostgreSQL (remembered after).
up: install
	$(BIN)/hearth stack up $(if $(SYNAPSE_DATABASE),--synapse-database '$(SYNAPSE_DATABASE)')
	@# Provision the themed spaces (plan/apply; a no-op when nothing changed).
	$(BIN)/hearth --config .data/hearth.toml spaces apply

down:
	@if [ -x $(BIN)/hearth ]; then $(BIN)/hearth stack down; else echo "nothing to stop (no .venv)"; fi

restart: down up

status: install
	$(BIN)/hearth stack status

logs:
	@echo "Hearth:  .data/logs/hearth.log"; echo "Synapse: .data/synapse/homeserver.log (stdout: .data/synapse/stdout.log)"
	tail -n 40 -F .data/logs/hearth.log .data/synapse/homeserver.log

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Two worker processes, each test file on one of them (its module fixtures stay together); each
# worker starts its own throwaway Synapse and Hearth stacks. Most of the suite waits on them.
test: lint
	$(BIN)/pytest -q -ra --durations=15 -n 2 --dist loadfile

bench: install
	$(BIN)/python bench/provision.py
	$(BIN)/python bench/evaluate.py
	$(BIN)/python bench/screening.py
	$(BIN)/python bench/escalation.py
