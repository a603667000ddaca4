"""The test suite. A package, so that its helpers import as ``tests.helpers.…`` (pyproject.toml puts the
repository root on ``sys.path`` with pytest's ``pythonpath`` setting) and its modules have unique names."""
