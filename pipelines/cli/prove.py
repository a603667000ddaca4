"""``prove``: proofs from the verifiable log, as JSON. Read-only: no Dagster."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipelines.cli.errors import EXIT_OK, CommandFailure, UsageError, command
from pipelines.cli.options import settings


def register(commands) -> None:
    prove = command(commands, "prove", "an event's inclusion proof against the latest witnessed checkpoint, "
                                       "or a consistency proof between two tree sizes (JSON)")
    prove.add_argument("event_id", nargs="?", metavar="EVENT_ID", help="the event whose leaf to prove")
    prove.add_argument("--consistency", nargs=2, type=int, metavar=("OLD", "NEW"),
                       help="the consistency proof from tree size OLD to NEW instead")
    prove.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from transforms.lake import Lake, is_remote
    from transforms.merkle import MerkleError
    from transforms.tlog import ProofError, prove_consistency, prove_inclusion
    from transforms.witness import WitnessError

    if (args.event_id is None) == (args.consistency is None):
        raise UsageError("give either EVENT_ID or --consistency OLD NEW")
    lake = Lake.at(settings().lake)
    if not is_remote(lake.root) and not Path(lake.root).is_dir():
        raise UsageError(f"no lake at {lake.root}: the directory does not exist")
    try:
        if args.consistency is not None:
            try:
                proof = prove_consistency(lake, *args.consistency)
            except ValueError as error:
                raise UsageError(str(error)) from None
        else:
            proof = prove_inclusion(lake, args.event_id)
    except (ProofError, WitnessError, MerkleError) as error:
        raise CommandFailure(str(error)) from None
    print(json.dumps(proof, indent=2))
    return EXIT_OK
