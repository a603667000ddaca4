"""Dagster wiring and entry points (CLI) of the activity log pipeline."""
