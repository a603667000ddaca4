# Quick start: `make demo` (sample data → whole pipeline) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/data/dagster
# Dagster writes a run's asset events in batches (pipelines/event_storage.py); 0 turns it off.
export DAGSTER_EVENT_BATCH_SIZE ?= 1000
export ACTIVITYLOG_LAKE ?= $(CURDIR)/data/lake
export ACTIVITYLOG_LANDING ?= $(CURDIR)/data/landing
# The demo writes data/activitylog.yaml; use it unless ./activitylog.yaml or ACTIVITYLOG_CONFIG says otherwise.
# The demo records the first day of its sample here (ACTIVITYLOG_START_DATE ?= …), so `make ui` shows
# the demo's partitions rather than every day since 2020-01-01; a value in the environment wins.
-include $(CURDIR)/data/demo.mk
ifdef ACTIVITYLOG_START_DATE
export ACTIVITYLOG_START_DATE
endif
export ACTIVITYLOG_CONFIG ?= $(if $(wildcard $(CURDIR)/activitylog.yaml),,$(wildcard $(CURDIR)/data/activitylog.yaml))

.PHONY: install demo ui test test-fast test-s3 test-postgres bench bench-scale bench-backfill browser clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=python3"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

$(DAGSTER_HOME):
	@mkdir -p $(DAGSTER_HOME)
	@test -f $(DAGSTER_HOME)/dagster.yaml || sed 's|@DAGSTER_HOME@|$(DAGSTER_HOME)|' pipelines/dagster_instance.yaml > $(DAGSTER_HOME)/dagster.yaml

demo: $(STAMP) $(DAGSTER_HOME)
	$(BIN)/activitylog demo

ui: $(STAMP) $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# The suite again with every test's lake on S3 (a moto_server subprocess on 127.0.0.1). Tests that never
# use the `lake` fixture (PostHog's HTTP suites on a lake of their own, the browser, pure functions) run
# in the first pass only (LAKE_INDEPENDENT, below).
test-s3: $(STAMP)
	ACTIVITYLOG_TEST_LAKE=s3 $(BIN)/python -m pytest $(LAKE_INDEPENDENT)

# The suite again with Dagster on PostgreSQL (deploy/dagster.yaml): scripts/test-postgres installs
# Debian's postgresql if needed (root or sudo) and starts it on 127.0.0.1. Or set
# ACTIVITYLOG_TEST_POSTGRES=postgresql://user:password@host:port/postgres to use a server of your own.
# Tests that never touch the Dagster instance (PostHog's HTTP suites, the browsers, validation, enrichment,
# the email client, pure functions) run in the first pass only.
LAKE_INDEPENDENT = --ignore=tests/posthog --ignore=tests/test_page_browser.py --ignore=tests/test_visibility.py \
  --ignore=tests/test_field_discovery.py --ignore=tests/test_commitments_canonical.py \
  --ignore=tests/test_commitments_leaves.py --ignore=tests/test_merkle.py --ignore=tests/test_event_storage.py \
  --ignore=tests/test_day_progress.py --ignore=tests/test_mask_prefilter.py
POSTGRES_SKIP = $(LAKE_INDEPENDENT) --ignore=tests/test_ask_browser.py --ignore=tests/test_docs_offline.py \
  --ignore=tests/test_validation.py --ignore=tests/test_validation_rules.py --ignore=tests/test_key_columns.py \
  --ignore=tests/test_email.py --ignore=tests/test_id_conflicts.py --ignore=tests/test_history.py --ignore=tests/test_enrich.py
test-postgres: $(STAMP)
	@url="$${ACTIVITYLOG_TEST_POSTGRES:-$$(scripts/test-postgres | tail -n 1)}" && test -n "$$url" && \
	  echo "PostgreSQL for the Dagster instance: $${url%%:*}://…@$${url##*@}" && \
	  ACTIVITYLOG_TEST_POSTGRES="$$url" $(BIN)/python -m pytest $(POSTGRES_SKIP)

# Debian's chromium for the browser test of /docs and /redoc (root or sudo; nothing when installed).
browser:
	scripts/install-browser

bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-scale: $(STAMP)
	$(BIN)/python -m bench.scale

bench-backfill: $(STAMP)
	$(BIN)/python -m bench.backfill

clean:
	rm -rf data .pytest_cache
