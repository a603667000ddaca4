"""Pure Polars logic of the activity log pipeline: parsing, validation, normalization, queries.

Nothing in this package imports Dagster, so notebooks and the read-only CLI stay fast to start.
"""
