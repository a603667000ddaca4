"""The ``summary`` column: one plain-text sentence per event, from Jinja2 templates per scope/activity.

A template is rendered once per (scope, activity) with placeholders, then turned into a vectorized
Polars expression, so a million events cost one ``concat_str``, not a million renders. Templates use
plain variables (``{{ actor }}``); per-row logic (``{% if %}``, filters) is not evaluated per row.

Variables: ``actor`` (display name, "System" for system events, with " (impersonated)" when
impersonated), ``activity``, ``scope``, ``kind`` (scope in words: "feature flag"), ``resource``,
``item_id``, ``changes`` (": field before → after, …" or empty), ``project``, ``organization``.
"""

from __future__ import annotations

from functools import cache

import jinja2
import polars as pl

from transforms import jsontext

MAX_VALUE_CHARS = 40
MAX_CHANGES_LISTED = 5
ELLIPSIS = "…"

# Keys: "Scope.activity", "Scope.*", "*.activity", "*.*" (most specific wins).
DEFAULT_TEMPLATES: dict[str, str] = {
    "*.*": '{{ actor }} {{ activity }} {{ kind }} "{{ resource }}"{{ changes }}',
    "*.updated": '{{ actor }} changed {{ kind }} "{{ resource }}"{{ changes }}',
    "*.created": '{{ actor }} created {{ kind }} "{{ resource }}"',
    "*.deleted": '{{ actor }} deleted {{ kind }} "{{ resource }}"',
    "*.exported": '{{ actor }} exported {{ kind }} "{{ resource }}"',
    "*.revoked": '{{ actor }} revoked {{ kind }} "{{ resource }}"',
    "OrganizationMembership.invited": '{{ actor }} invited {{ resource }} to {{ organization }}',
    "OrganizationMembership.joined": '{{ actor }} joined {{ organization }}',
    "OrganizationMembership.removed": '{{ actor }} removed {{ resource }} from {{ organization }}',
    "OrganizationMembership.updated": '{{ actor }} changed the membership of {{ resource }} in {{ organization }}{{ changes }}',
    "Organization.updated": '{{ actor }} changed organization settings of {{ organization }}{{ changes }}',
    "Team.updated": '{{ actor }} changed project settings of {{ project }}{{ changes }}',
}

_MARK = "\x00"


def _printable(expr: pl.Expr) -> pl.Expr:
    """Plain text, one line: control characters (newlines, tabs, NUL) become spaces."""
    return expr.str.replace_all(r"[\x00-\x1f\x7f]", " ")


def shorten(expr: pl.Expr, limit: int = MAX_VALUE_CHARS) -> pl.Expr:
    return pl.when(expr.str.len_chars() > limit).then(
        pl.concat_str(expr.str.slice(0, limit - 1), pl.lit(ELLIPSIS))
    ).otherwise(expr)


def _variables() -> dict[str, pl.Expr]:
    actor = pl.coalesce(
        pl.col("actor_name"),
        pl.when(pl.col("is_system")).then(pl.lit("System")).otherwise(pl.lit("Someone")),
    )
    actor = pl.when(pl.col("was_impersonated")).then(pl.concat_str(actor, pl.lit(" (impersonated)"))).otherwise(actor)
    kind = (
        pl.col("scope").str.replace_all(r"([a-z0-9])([A-Z])", "$1 $2")
        .str.replace_all(r"([A-Z]+)([A-Z][a-z])", "$1 $2").str.to_lowercase()
    )
    changes = pl.when(pl.col("changes_text").is_not_null() & (pl.col("changes_text") != "")).then(
        pl.concat_str(pl.lit(": "), pl.col("changes_text"))
    ).otherwise(pl.lit(""))
    return {
        "actor": actor,
        "activity": pl.col("activity"),
        "scope": pl.col("scope"),
        "kind": kind,
        "resource": shorten(pl.col("resource_name").fill_null("")),
        "item_id": pl.col("item_id").fill_null(""),
        "changes": changes,
        "project": pl.coalesce(pl.col("project_name"), pl.concat_str(pl.lit("project "), pl.col("team_id").cast(pl.String)),
                               pl.lit("the project")),
        "organization": pl.coalesce(pl.col("organization_name"), pl.lit("the organization")),
    }


def compile_template(source: str) -> pl.Expr:
    """A Jinja2 template → one Polars string expression over the activity_log columns."""
    variables = _variables()
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    try:
        rendered = environment.from_string(source).render({name: f"{_MARK}{name}{_MARK}" for name in variables})
    except jinja2.TemplateError as exc:
        raise ValueError(f"summary template {source!r}: {exc}") from None
    pieces = rendered.split(_MARK)
    parts: list[pl.Expr] = []
    for position, piece in enumerate(pieces):
        if position % 2 == 0:
            if piece:
                parts.append(pl.lit(piece))
        elif piece in variables:
            parts.append(variables[piece].fill_null(""))
        else:
            raise ValueError(f"summary template {source!r}: {{{{ {piece} }}}} is not a plain variable")
    return pl.concat_str(parts) if parts else pl.lit("")


@cache
def _compiled(templates: tuple[tuple[str, str], ...]) -> pl.Expr:
    by_key = dict(templates)
    expression = compile_template(by_key["*.*"])
    # Least specific first, so more specific conditions wrap it and win.
    def rank(key: str) -> int:
        scope, activity = key.split(".", 1)
        return (scope != "*") * 2 + (activity != "*")
    for key in sorted((k for k in by_key if k != "*.*"), key=rank):
        scope, activity = key.split(".", 1)
        condition = pl.lit(True)
        if scope != "*":
            condition = condition & (pl.col("scope") == scope)
        if activity != "*":
            condition = condition & (pl.col("activity") == activity)
        expression = pl.when(condition).then(compile_template(by_key[key])).otherwise(expression)
    return _printable(expression)


def summary_expression(templates: dict[str, str] | None = None) -> pl.Expr:
    merged = {**DEFAULT_TEMPLATES, **(templates or {})}
    return _compiled(tuple(sorted(merged.items()))).alias("summary")


def change_summaries(changes: pl.DataFrame) -> pl.DataFrame:
    """Per event: ``changed_fields`` (in order) and ``changes_text`` ("a false → true, b 0 → 50",
    strings in quotes, at most five changes listed and the rest counted)."""
    def shown(side: str) -> pl.Expr:
        # JSON text, so "1" and 1 read differently; a masked value shows the bare word.
        text = pl.col(side).fill_null("null").map_batches(jsontext.readable, return_dtype=pl.String)
        value = pl.when(pl.col("masked")).then(pl.lit("masked")).otherwise(text)
        return shorten(_printable(value))

    listed = pl.col("change_index").rank("ordinal").over("id") <= MAX_CHANGES_LISTED
    return (
        changes.sort("id", "change_index")
        .with_columns(
            pl.concat_str(pl.col("field").fill_null("?"), pl.lit(" "), shown("before"), pl.lit(" → "), shown("after"))
            .alias("_change_text"),
            listed.alias("_listed"),
        )
        .group_by("id", maintain_order=True)
        .agg(
            pl.col("field").drop_nulls().alias("changed_fields"),
            pl.col("_change_text").filter(pl.col("_listed")).str.join(", ").alias("_listed_text"),
            (pl.len() - pl.col("_listed").sum()).alias("_more"),
        )
        .select(
            "id", "changed_fields",
            pl.when(pl.col("_more") > 0)
            .then(pl.format("{} and {} more", pl.col("_listed_text"), pl.col("_more")))
            .otherwise(pl.col("_listed_text")).alias("changes_text"),
        )
    )
