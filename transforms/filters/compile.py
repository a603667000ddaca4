"""The filter compiled to Polars: one Boolean ``pl.Expr`` over ``activity_log``'s columns.

The fields are column comparisons (:func:`filter_expression`); a detail filter (:func:`detail_expression`)
reads the ``detail`` JSON text: ``changes[].field`` from the ``changed_fields`` list column, scalar
values by cutting the text into JSON tokens and walking the path over them, containers and
``contains`` by the plain rule (:meth:`~transforms.filters.DetailFilter.matches`) on the candidate rows.
A cheap necessary condition on the text (:func:`_prefilter`) keeps the other rows from being cut at all.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import polars as pl

from .paths import ANY, text_form

if TYPE_CHECKING:
    from .model import ActivityFilter, DetailFilter


# A literal that appears verbatim in the stored JSON text whenever a string value equals/contains it:
# printable ASCII without the characters JSON may escape or reformat.
_VERBATIM = re.compile(r"^[\x20-\x7e]+$")
_REFORMATTED = set('"\\/:,{}[]')


def _verbatim(text: str) -> bool:
    return bool(_VERBATIM.match(text)) and not (_REFORMATTED & set(text))


# One JSON token: a key with its colon (``"name":``), a string (escapes included), a structural
# character, or a bare scalar (number, true, false, null). Outside strings JSON has no quotes, so a
# left-to-right scan cuts exactly these; a colon only ever follows a key.
_TOKEN = r'"(?:[^"\\]|\\.)*"\s*:|"(?:[^"\\]|\\.)*"|[{}\[\],]|[^\s{}\[\]:,"]+'


def _annotate() -> pl.Expr:
    """Each JSON token of a row (inside ``list.eval``) with what the path walk needs, computed once:
    the token ``t``; its ``level`` (how many containers are open around it); whether it ``open``s or
    ``close``s one or is a ``key``; and ``name``, a key's or a string's text (null for other tokens)."""
    t = pl.element()
    opens = t.is_in(["{", "["])
    closes = t.is_in(["}", "]"])
    level = (opens.cast(pl.Int32) - closes.cast(pl.Int32)).cum_sum() - opens.cast(pl.Int32)
    is_key = t.str.ends_with(":")
    quoted = pl.when(is_key).then(t.str.strip_chars_end(": \t\r\n")).when(t.str.starts_with('"')).then(t)
    # A string's text lies between its quotes (no quote is inside unless escaped); only one holding an
    # escape is decoded (few are, and the decoder is the costly part: a null costs it nothing).
    escaped = quoted.str.contains("\\", literal=True)
    name = pl.when(escaped).then(pl.when(escaped).then(quoted).str.json_decode(pl.String)).otherwise(
        quoted.str.strip_chars('"'))
    return pl.struct(t.alias("t"), level.alias("level"), opens.alias("open"), closes.alias("close"),
                     is_key.alias("key"), name.alias("name"))


def _scalars(variants: Iterable[Any]) -> tuple[list[str], list[float], list[bool], list[str]]:
    """Variants split by JSON type: strings, numbers (as floats), booleans, containers (compact text)."""
    strings, numbers, booleans, containers = [], [], [], []
    for variant in variants:
        if isinstance(variant, bool):
            booleans.append(variant)
        elif isinstance(variant, (int, float)):
            try:
                numbers.append(float(variant))
            except OverflowError:  # an integer beyond float range equals no stored number
                pass
        elif isinstance(variant, str):
            strings.append(variant)
        elif isinstance(variant, (list, dict)):
            containers.append(text_form(variant))
    return strings, numbers, booleans, containers


def detail_expression(detail: DetailFilter) -> pl.Expr:
    """One detail filter over the ``detail`` column (and ``changed_fields``): True where it matches."""
    fast = _changed_fields_expression(detail)
    if fast is not None:
        return fast
    # Only rows whose text can match are cut into tokens (the others are null, which costs nothing).
    candidates = pl.when(_prefilter(detail)).then(pl.col("detail"))
    if _needs_text(detail):
        # Comparing whole containers (or ``contains``, which reads them as text) by tokens would join
        # every row's tokens once per token: memory quadratic in the size of ``detail``. Such filters
        # read the candidate rows in Python, by the same rule (``DetailFilter.matches``), in linear memory.
        # Not marked elementwise: Polars would then also evaluate it on Parquet statistics, whose
        # strings are cut short (not JSON).
        return candidates.map_batches(lambda texts: _match_texts(detail, texts),
                                      return_dtype=pl.Boolean).fill_null(False)
    return (candidates.str.extract_all(_TOKEN).list.eval(_annotate()).list.eval(_token_condition(detail))
            .list.any().fill_null(False))


def _needs_text(detail: DetailFilter) -> bool:
    return detail.operation == "contains" or bool(_scalars(detail.variants())[3])


def _match_texts(detail: DetailFilter, texts: pl.Series) -> pl.Series:
    return pl.Series([None if text is None else detail.matches(json.loads(text)) for text in texts],
                     dtype=pl.Boolean)


def _prefilter(detail: DetailFilter) -> pl.Expr:
    """A necessary condition on the stored JSON text, checked without cutting it into tokens: the
    last key appears as written, and a text value (or a ``contains`` needle) appears verbatim
    when it is printable ASCII that JSON never escapes or reformats."""
    text = pl.col("detail")
    condition = text.is_not_null()
    keys = [step for step in detail.steps if isinstance(step, str) and step != ANY]
    if keys and _verbatim(keys[-1]):
        condition = condition & text.str.contains(f'"{keys[-1]}"', literal=True)
    if detail.operation == "contains":
        if _verbatim(detail.value):
            condition = condition & text.str.contains("(?i)" + re.escape(detail.value))
    else:
        variants = detail.variants()
        if variants and all(isinstance(v, str) and v and _verbatim(v) for v in variants):
            condition = condition & text.str.contains("|".join(re.escape(v) for v in variants))
        elif variants and all(isinstance(v, (bool, str)) for v in variants) and all(
                isinstance(v, bool) or (v and _verbatim(v)) for v in variants):
            words = [("true" if v else "false") if isinstance(v, bool) else v for v in variants]
            condition = condition & text.str.contains("|".join(re.escape(w) for w in words))
    return condition.fill_null(False)


def _changed_fields_expression(detail: DetailFilter) -> pl.Expr | None:
    """``changes[].field`` is also the ``changed_fields`` list column: no JSON parsing needed,
    as long as every variant is text (field names are)."""
    if detail.steps != ("changes", ANY, "field"):
        return None
    element = pl.col("changed_fields").list
    if detail.operation in ("exact", "in"):
        variants = detail.variants()
        if not all(isinstance(v, str) for v in variants):
            return None
        return element.eval(pl.element().is_in(variants)).list.any().fill_null(False)
    needle = detail.value.lower()
    return (element.eval(pl.element().str.to_lowercase().str.contains(needle, literal=True))
            .list.any().fill_null(False))


def _token_condition(detail: DetailFilter) -> pl.Expr:
    """Over one row's annotated tokens (:func:`_annotate`): True at each value the path reaches.

    A value at path step ``k`` sits at level ``k``; for each step ``j`` its container is the last
    ``{``/``[`` opened at level ``j-1`` and, in an object, its key the last key at level ``j`` (in an
    array, its index the commas at level ``j`` since that ``[``)."""
    token = pl.element().struct
    t, level, name = token.field("t"), token.field("level"), token.field("name")
    opens, closes, is_key = token.field("open"), token.field("close"), token.field("key")
    is_string = name.is_not_null() & ~is_key
    first = t.str.slice(0, 1)
    depth = len(detail.steps)
    selected = (level == depth) & ~is_key & ~closes & (t != ",")
    for j, step in enumerate(detail.steps, start=1):
        opened = opens & (level == j - 1)
        if step == ANY:
            selected = selected & (pl.when(opened).then(t).forward_fill() == "[")
        elif isinstance(step, int):
            commas = ((t == ",") & (level == j)).cast(pl.Int32).cum_sum()
            at_open = pl.when(opened).then(commas).forward_fill()
            selected = (selected & (pl.when(opened).then(t).forward_fill() == "[")
                        & ((commas - at_open) == step))
        else:
            # The last key at level j, reset by each container opened at level j - 1: an array's
            # elements never see a key of an earlier object.
            key = pl.when(is_key & (level == j)).then(pl.lit("k") + name).when(opened).then(pl.lit("o"))
            selected = selected & (key.forward_fill() == "k" + step)
    decoded_value = name
    is_number = first.is_in(list("-0123456789"))
    if detail.operation == "contains":
        needs_text = True
    else:
        strings, numbers, booleans, containers = _scalars(detail.variants())
        needs_text = bool(containers)
    if needs_text:  # a container's compact JSON text: its tokens joined, from its ``{``/``[`` to its close
        compact = pl.when(is_key).then(t.str.strip_chars_end(": \t\r\n") + ":").otherwise(t)
        lengths = compact.str.len_chars()
        ends = lengths.cum_sum()
        close_end = pl.when(closes & (level == depth)).then(ends).backward_fill()
        container_text = compact.str.join("").str.slice(ends - lengths, close_end - ends + lengths)
    if detail.operation == "contains":
        text = (pl.when(is_string).then(decoded_value).when(opens).then(container_text)
                .when(t == "null").then(pl.lit(None, dtype=pl.String)).otherwise(t))
        return selected & text.str.to_lowercase().str.contains(detail.value.lower(), literal=True).fill_null(False)
    condition = pl.lit(False)
    if strings:
        condition = condition | (is_string & decoded_value.is_in(strings))
    if numbers:
        condition = condition | (is_number & t.cast(pl.Float64, strict=False).is_in(numbers))
    for flag in sorted(set(booleans)):
        condition = condition | (t == ("true" if flag else "false"))
    if containers:
        condition = condition | (opens & container_text.is_in(containers))
    return selected & condition.fill_null(False)


def _wildcard(values: Sequence[str], column: str) -> pl.Expr:
    """Exact values with ``is_in``; values with ``*`` as anchored patterns."""
    plain = [v for v in values if "*" not in v]
    patterns = [v for v in values if "*" in v]
    conditions = [pl.col(column).is_in(plain)] if plain else []
    if patterns:
        regex = "|".join("^" + ".*".join(re.escape(part) for part in v.split("*")) + "$" for v in patterns)
        conditions.append(pl.col(column).str.contains(regex))
    return pl.any_horizontal(conditions).fill_null(False)


def filter_expression(activity_filter: ActivityFilter, start: datetime | None, end: datetime | None,
                      team_organizations: Mapping[int, Iterable[str]] | None = None) -> pl.Expr:
    """The filter's fields as one Boolean expression, partition bounds (on ``day``) first; ``start`` and
    ``end`` are its inclusive UTC bounds (:meth:`~transforms.filters.ActivityFilter.time_bounds`)."""
    conditions: list[pl.Expr] = []
    if start is not None:  # on the partition column first: the Delta scan skips whole days
        conditions += [pl.col("day") >= start.date(), pl.col("created_at") >= start]
    if end is not None:
        conditions += [pl.col("day") <= end.date(), pl.col("created_at") <= end]
    if activity_filter.scopes:
        conditions.append(pl.col("scope").is_in(list(activity_filter.scopes)))
    if activity_filter.activities:
        conditions.append(pl.col("activity").is_in(list(activity_filter.activities)))
    if activity_filter.item_ids:
        conditions.append(pl.col("item_id").is_in(list(activity_filter.item_ids)))
    if activity_filter.team_ids:
        condition = pl.col("team_id").is_in(list(activity_filter.team_ids))
        if activity_filter.include_organization:
            organizations = sorted({o for t in activity_filter.team_ids
                                    for o in (team_organizations or {}).get(t, ())})
            condition = condition | (
                (pl.col("level") == "organization") & pl.col("organization_id").is_in(organizations))
        conditions.append(condition.fill_null(False))
    if activity_filter.users:
        emails = [u.lower() for u in activity_filter.users]
        conditions.append((pl.col("actor_uuid").is_in(list(activity_filter.users))
                           | pl.col("actor_email").str.to_lowercase().is_in(emails)).fill_null(False))
    if activity_filter.was_impersonated is not None:
        conditions.append(pl.col("was_impersonated") == activity_filter.was_impersonated)
    if activity_filter.is_system is not None:
        conditions.append(pl.col("is_system") == activity_filter.is_system)
    if activity_filter.clients:
        conditions.append(_wildcard(activity_filter.clients, "client"))
    if activity_filter.ip_addresses:
        conditions.append(_wildcard(activity_filter.ip_addresses, "ip_address"))
    if activity_filter.search:
        pattern = "(?i)" + re.escape(activity_filter.search)
        conditions.append((pl.col("detail").str.contains(pattern).fill_null(False)
                           | pl.col("summary").str.contains(pattern).fill_null(False)))
    conditions += [detail_expression(d) for d in activity_filter.detail_filters]
    return pl.all_horizontal(conditions) if conditions else pl.lit(True)
