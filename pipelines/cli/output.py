"""What several commands print: rows as a table, JSONL or CSV, the command of the next page, the
ingest and notify summaries. Polars is imported only when rows are printed."""

from __future__ import annotations

import argparse
import sys


def print_rows(rows, output_format: str, table_columns: list[str]) -> None:
    import polars as pl

    from transforms.export import format_timestamps

    out = sys.stdout
    if output_format == "jsonl":  # timestamps as in exports: 2024-01-15T10:30:00.000000Z
        format_timestamps(rows).write_ndjson(out)
    elif output_format == "csv":  # CSV cells are flat: lists become "a,b", nested values JSON text
        flat = format_timestamps(rows).with_columns(pl.col(pl.List(pl.String)).list.join(","))
        flat = flat.with_columns(_json_column(name, dtype) for name, dtype in flat.schema.items() if dtype.is_nested())
        flat.write_csv(out)
    else:
        shown = rows.with_columns(
            pl.coalesce("actor_name", "actor_email", pl.when(pl.col("is_system")).then(pl.lit("System"))).alias("actor"),
            pl.col("created_at").dt.strftime("%Y-%m-%d %H:%M:%SZ"),
        ) if rows.height else rows.with_columns(pl.lit(None, dtype=pl.String).alias("actor"))
        with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=120, tbl_width_chars=220,
                       tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
            print(shown.select(c for c in table_columns if c in shown.columns), file=out)
        print(f"{rows.height} rows", file=sys.stderr)


def _json_column(name: str, dtype):
    """A nested column as JSON text (vectorized: one ``json_encode`` per element)."""
    import polars as pl

    if isinstance(dtype, pl.Struct):
        return pl.col(name).struct.json_encode()
    encoded = pl.col(name).list.eval(pl.element().struct.json_encode() if isinstance(dtype.inner, pl.Struct)
                                     else pl.element().cast(pl.String)).list.join(",")
    return pl.concat_str(pl.lit("["), encoded, pl.lit("]")).alias(name)


def short(text: str | None, limit: int = 80) -> str:
    text = "null" if text is None else text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def filter_flag_tokens(args: argparse.Namespace) -> list[str]:
    """The filter flags of ``args`` as command-line tokens (the inverse of ``options.add_filter_flags``)."""
    tokens: list[str] = []
    if args.filter:
        tokens += ["--filter", args.filter]
    for flag, value in (("--start", args.start), ("--end", args.end)):
        if value is not None:
            tokens += [flag, value]
    for flag, values in (("--user", args.user), ("--scope", args.scope), ("--activity", args.activity),
                         ("--item-id", args.item_id), ("--team-id", args.team_id), ("--client", args.client),
                         ("--ip-address", args.ip_address)):
        for value in values:
            tokens += [flag, str(value)]
    if args.include_org:
        tokens.append("--include-org")
    if args.was_impersonated is not None:
        tokens.append("--impersonated" if args.was_impersonated else "--not-impersonated")
    if args.is_system is not None:
        tokens.append("--system" if args.is_system else "--not-system")
    if args.search is not None:
        tokens += ["--search", args.search]
    for path, operation, value in args.detail:
        tokens += ["--detail", path, operation, value]
    return tokens


def next_page_command(args: argparse.Namespace, cursor: str, selection: list[str],
                      positionals: list[str] = ()) -> str:
    """The command that prints the next page: the same command, lake, ``selection`` (its filter flags),
    format, limit and window, with ``--after CURSOR``, shell-quoted (``shlex``) so that it works pasted
    into a shell."""
    import shlex

    tokens = ["activitylog", args.command]
    if args.lake:
        tokens += ["--lake", args.lake]
    tokens += selection
    if args.format != "table":
        tokens += ["--format", args.format]
    tokens += ["--limit", str(args.limit)]
    if args.window is not None:
        tokens += ["--window", args.window]
    tokens += ["--after", cursor]
    if positionals:  # after `--`, so that an item id such as -1 is not read as a flag
        tokens += ["--", *positionals] if any(p.startswith("-") for p in positionals) else list(positionals)
    return shlex.join(tokens)


def print_ingest_summary(summary: dict, lake: str, elapsed: float) -> None:
    print()
    print(f"Ingested {summary['files_ingested']} files in {elapsed:.1f}s "
          f"({summary['files_skipped']} already ingested, skipped)")
    print(f"  lines read      {summary['lines']:>10,}")
    print(f"  accepted        {summary['accepted']:>10,}")
    print(f"  duplicates      {summary['duplicates']:>10,}")
    print(f"  quarantined     {summary['quarantined']:>10,}")
    for reason, count in summary["quarantine_reasons"].items():
        print(f"      {count:>6,}  {reason}")
    days = summary["days_changed"]
    if days:
        print(f"  days written    {len(days):>10,}  ({days[0]} … {days[-1]})")
    else:
        print("  days written             0  (nothing new)")
    for changed in summary["files_changed"]:
        print(f"  WARNING: {changed} changed after it was ingested and was not read again")
    print(f"Lake: {lake}")


def print_notify_summary(report: dict) -> None:
    days = report["days"]
    print()
    if not days:
        print("Notifications: no day of activity_log was written since its last evaluation; nothing to do")
        return
    print(f"Notifications: {len(days)} day(s) evaluated" + (f" ({days[0]} … {days[-1]})" if len(days) > 1 else f" ({days[0]})"))
    print(f"  {'subscription':<40}{'matched':>9}{'sent':>7}{'skipped':>9}{'failed':>8}{'already':>9}")
    for row in report["subscriptions"]:
        print(f"  {row['subscription'][:39]:<40}{row['matched']:>9,}{row['sent']:>7,}{row['skipped']:>9,}"
              f"{row['failed']:>8,}{row['already']:>9,}")
    if report.get("resumed"):
        print(f"  {report['resumed']} deliveries of an interrupted run were sent again (same webhook-id)")
