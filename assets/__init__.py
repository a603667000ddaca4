"""Dagster asset and asset-check definitions: thin wrappers that read, call a transform, write, report."""
