"""The page of `activitylog serve`: sessions, the feed, tokens, diffs and the ask page, on one
two-organization world per module (conftest.py)."""
