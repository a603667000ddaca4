"""``export`` and ``verify-export``: files with a manifest, outside the lake. Read-only for the lake: no Dagster."""

from __future__ import annotations

import argparse
import sys
import time

from pipelines.cli.errors import EXIT_OK, CommandFailure, UsageError, command
from pipelines.cli.options import add_filter_flags, filter_from_args, read_window, settings


def register(commands) -> None:
    export = command(commands, "export", "write matching activity_log rows to CSV, XLSX or JSONL, with a manifest")
    add_filter_flags(export)
    export.add_argument("--format", choices=["csv", "xlsx", "jsonl"], required=True)
    export.add_argument("--out", required=True, metavar="URI",
                        help="a file path, a directory (ending in /), or s3://bucket/prefix/")
    export.add_argument("--name", help="file name without extension when --out is a directory (default: from the bounds)")
    export.add_argument("--quiet", action="store_true", help="no progress lines")
    export.set_defaults(handler=run_export_command)

    verify_export = command(commands, "verify-export", "recompute an export's checksums against its manifest")
    verify_export.add_argument("manifest", metavar="MANIFEST", help="the <name>.manifest.json (path or s3:// URI)")
    verify_export.set_defaults(handler=run_verify_export)


def run_export_command(args: argparse.Namespace) -> int:
    from destinations.exports import ExportError, run_export
    from transforms.lake import Lake

    activity_filter = filter_from_args(args)
    window = read_window(args)
    started = time.monotonic()
    progress = None if args.quiet else (lambda line: print(f"  {line}", file=sys.stderr))
    try:
        result = run_export(Lake.at(settings().lake), activity_filter, args.format, args.out, name=args.name,
                            read_window=window, progress=progress)
    except ExportError as exc:
        raise CommandFailure(str(exc)) from None
    except OSError as exc:
        raise CommandFailure(f"{args.out}: {exc.strerror or exc}") from None
    manifest = result.manifest
    file = manifest["files"][0]
    print(f"Exported {manifest['rows']:,} rows in {time.monotonic() - started:.1f}s "
          f"(activity_log version {manifest['table_version']})")
    print(f"  file      {result.file}  ({file['bytes']:,} bytes, sha256 {file['sha256']})")
    sheets = file.get("sheets", [])
    if len(sheets) > 1:  # more rows than one sheet holds
        for sheet in sheets:
            print(f"  sheet     {sheet['name']}: {sheet['rows']:,} rows")
    if file.get("cells_truncated"):
        print(f"  NOTE: {file['cells_truncated']} cells exceeded Excel's 32,767 characters and end in …[truncated]; "
              f"CSV and JSONL carry them whole")
    print(f"  manifest  {result.manifest_uri}")
    return EXIT_OK


def run_verify_export(args: argparse.Namespace) -> int:
    from destinations.exports import ExportError, verify_manifest

    try:
        manifest, problems = verify_manifest(args.manifest)
    except ExportError as exc:
        raise UsageError(str(exc)) from None
    if problems:
        for problem in problems:
            print(f"MISMATCH {problem}")
        raise CommandFailure(f"{len(problems)} problem(s): the export does not match its manifest")
    files = manifest["files"]
    print(f"OK: {len(files)} file(s) match the manifest ({manifest['rows']:,} rows, {manifest['format']}, "
          f"activity_log version {manifest['table_version']}, created {manifest['created_at']})")
    return EXIT_OK
