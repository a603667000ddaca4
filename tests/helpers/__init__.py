"""What tests share besides fixtures (those live in ``tests/conftest.py``), one small module per subject:

- here: ``ROOT``, the repository;
- ``environment``: the session's throwaway DAGSTER_HOME/lake/landing/config and the lake backend of the
  pass (``ACTIVITYLOG_TEST_LAKE``);
- ``events``: ``make_event`` (a valid PostHog-format event), ``write_lines`` (landing files), ``NOW``;
- ``lakes``: ``build_lake``, the one way tests land events, ingest them and refresh the derived tables;
- ``servers``: real servers as subprocesses (``start_server``, ``child_env``, ``free_port``) and SMTP;
- ``receiver``: an HTTP server on 127.0.0.1 recording deliveries (webhooks, SIEM streams);
- ``s3``: ``moto_server`` as a subprocess, for the S3 pass and the S3 tests;
- ``postgres``: databases on the PostgreSQL pass's server (``ACTIVITYLOG_TEST_POSTGRES``);
- ``faults``: kill the real CLI after its N-th Delta commit and check the lake (recovery tests);
- ``posthog``: the PostHog-compatibility suite's events, projects and HTTP client (``tests/posthog/``);
- ``page``: the activity page's two-organization world (``page_world``, ``page_env``), sign-in, entry ids,
  viewer tokens;
- ``browser``: chromium's path and flags, viewports, ``own_origin`` (the ``browser`` fixture is in conftest.py);
- ``notify``: notification tests' flag events, configuration and delivery-ledger counts;
- ``json_text``: Hypothesis strategies writing JSON text (escapes, surrogates, any number);
- ``publish``: the publisher API's served world, requests and spool (``tests/publish/``);
- ``tenants``: the read API's three-organization world and requests (``tests/tenant_isolation/``);
- ``landing``: landing limits and the ingest's quarantine, ledger and raw rows (``tests/test_landing_*.py``);
- ``erasure``: text with its escapes read (``tests/test_erasure_*.py``);
- ``config``: no ACTIVITYLOG_CONFIG, files written, refusals (``tests/test_config_*.py``);
- ``verifiable_log``: the events and workspace of two ingest runs, ``verify`` (``tests/verifiable_log/``);
- ``sample``: an independent reader and validator of the demo's landing files (``tests/test_sample_*.py``).

A helper used by one test module stays in that module; one used by two or more belongs here. A fixture the
modules of one subject share is a plain function here and a thin fixture in each module.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
