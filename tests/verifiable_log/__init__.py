"""The verifiable log: ingest runs and their leaves and checkpoints, tampering and what verify finds,
the witness; two ingest runs per module (conftest.py), copied for each test that changes them."""
