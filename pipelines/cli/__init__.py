"""The ``activitylog`` command line: one module per command group, each with ``register(commands)``.

Commands that change the lake run the Dagster jobs (recorded in DAGSTER_HOME, visible in the UI);
read-only commands call ``transforms`` directly and never import Dagster (every heavy import is inside
a handler). Exit codes: 0 ok, 1 the command's own failure, 2 bad usage or bad input (one-line reason
on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys

from pipelines.cli import (
    ask, demo, erase, export, history, hold, ingest, keys, notify, prove, query, retention, serve, stream, verify,
)
from pipelines.cli.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CommandFailure, UsageError

__all__ = ["COMMANDS", "EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "CommandFailure", "UsageError", "main"]

# In the order `activitylog --help` lists them.
COMMANDS = (demo, ingest, query, ask, history, export, verify, prove, serve, keys, erase, retention, hold, stream,
            notify)
EXIT_INTERRUPTED = 130


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="activitylog", description="Activity log pipeline on a Delta Lake.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.lake:
        os.environ["ACTIVITYLOG_LAKE"] = args.lake
    if getattr(args, "landing", None):
        os.environ["ACTIVITYLOG_LANDING"] = args.landing
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"activitylog {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandFailure as exc:
        print(f"activitylog {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
