"""The publisher API served for real: limits and rejections, the spool, ingest of what was published,
the client; one served world per module (conftest.py)."""
