"""Exit codes, the two errors a handler raises, and the one way a command is declared."""

from __future__ import annotations

import argparse

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

LAKE_HELP = "lake root: a path or s3://bucket/prefix (default: $ACTIVITYLOG_LAKE or ./data/lake)"


class UsageError(Exception):
    """Bad usage or bad input: exit 2."""


class CommandFailure(Exception):
    """The command could not do its job: exit 1."""


def command(commands, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand of ``commands`` (the parser's subparsers) with the ``--lake`` every command takes."""
    sub = commands.add_parser(name, help=help_text, description=help_text)
    sub.add_argument("--lake", help=LAKE_HELP)
    return sub


def run_failed(what: str, exc: BaseException) -> CommandFailure:
    """A failed Dagster run as a one-line failure: its error's first line (the rest is in the run's logs)."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return CommandFailure(f"{what} run failed: {first}")
