# Quick start: `make demo` (sample data → whole pipeline) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/data/dagster
export ACTIVITYLOG_LAKE ?= $(CURDIR)/data/lake
export ACTIVITYLOG_LANDING ?= $(CURDIR)/data/landing
# The demo writes data/activitylog.yaml; use it unless ./activitylog.yaml or ACTIVITYLOG_CONFIG says otherwise.
export ACTIVITYLOG_CONFIG ?= $(if $(wildcard $(CURDIR)/activitylog.yaml),,$(wildcard $(CURDIR)/data/activitylog.yaml))

.PHONY: install demo ui test test-fast bench bench-scale clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=python3"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

$(DAGSTER_HOME):
	@mkdir -p $(DAGSTER_HOME)
	@test -f $(DAGSTER_HOME)/dagster.yaml || cp pipelines/dagster_instance.yaml $(DAGSTER_HOME)/dagster.yaml

demo: $(STAMP) $(DAGSTER_HOME)
	$(BIN)/activitylog demo

ui: $(STAMP) $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-scale: $(STAMP)
	$(BIN)/python -m bench.scale

clean:
	rm -rf data .pytest_cache
