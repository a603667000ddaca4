"""Detail paths and what a detail filter's value matches, as PostHog has them.

A path walks the event's ``detail`` JSON: ``name``, ``trigger.job_type``, ``changes[].field``; ``[]``
means "any element" (no limit on the array's length) and ``[N]`` the N-th (from 0). :func:`check_path`
applies PostHog's rules (no ``__``, no lookup-named segment, at most three ``[]``).
:func:`type_variants`, :func:`json_equal` and :func:`text_form` are what ``exact``, ``in`` and
``contains`` compare.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator, Sequence

from transforms.problems import Step

from .errors import fail

_SEGMENT = re.compile(r"^([^.\[\]]+)((?:\[\d*\])*)$")
ANY = "[]"

#: PostHog's limits and reserved names for detail filters (``posthog/api/advanced_activity_logs/filters.py``).
MAX_DETAIL_FILTERS = 100
MAX_PATH_LENGTH = 500
MAX_ARRAY_LEVELS = 3  # PostHog: 5 ** count("[]") <= 125
#: Segment names PostHog rejects: Django's lookups on a JSON field and on a key of it (``regex`` would
#: turn ``name.regex`` into a regular expression run against every row there).
RESERVED_SEGMENTS = frozenset({
    "contained_by", "contains", "endswith", "exact", "gt", "gte", "has_any_keys", "has_key", "has_keys",
    "icontains", "iendswith", "iexact", "in", "iregex", "isnull", "istartswith", "lt", "lte", "range",
    "regex", "startswith",
})


def check_path(path: Any, at: tuple[Step, ...] = ("detail_filters",)) -> None:
    """PostHog's rules for a detail path, with PostHog's messages: non-empty text of at most 500
    characters, no ``__``, at most three ``[]``, no empty segment, no segment named like a lookup.
    ``at``: where the path is a key (the problem's location is ``at`` + the path)."""
    def bad(message: str):
        return fail(at + (path,), message, named=True)

    if not isinstance(path, str) or not path:
        raise bad("Detail filter field paths must be non-empty strings.")
    if len(path) > MAX_PATH_LENGTH:
        raise bad(f"Detail filter field paths must be at most {MAX_PATH_LENGTH} characters.")
    if "__" in path:
        raise bad(f"Detail filter field path '{path}' contains '__'.")
    if path.count("[]") > MAX_ARRAY_LEVELS:
        raise bad(f"Detail filter field path '{path}' nests too many arrays.")
    for segment in path.replace("[]", "").split("."):
        if not segment:
            raise bad(f"Detail filter field path '{path}' has an empty segment.")
        if segment in RESERVED_SEGMENTS:
            raise bad(f"Detail filter field path '{path}' uses reserved segment '{segment}'.")


def parse_path(path: Any, at: tuple[Step, ...] = ("detail_filters",)) -> tuple[str | int, ...]:
    """``changes[].field`` → ("changes", ANY, "field"); ``items[2].id`` → ("items", 2, "id")."""
    check_path(path, at)
    steps: list[str | int] = []
    for segment in path.split("."):
        match = _SEGMENT.match(segment)
        if not match:
            raise fail(at + (path,), f"path {path!r} is malformed at {segment!r} "
                       "(write keys separated by dots, [] for any element, [N] for the N-th: changes[].field)",
                       named=True)
        steps.append(match.group(1))
        for index in re.findall(r"\[(\d*)\]", match.group(2)):
            steps.append(ANY if index == "" else int(index))
    return tuple(steps)


def values_at(document: Any, steps: Sequence[str | int]) -> Iterator[Any]:
    """Every value at the path (``[]`` fans out over a list; a missing key yields nothing)."""
    if not steps:
        yield document
        return
    step, rest = steps[0], steps[1:]
    if step == ANY:
        if isinstance(document, list):
            for element in document:
                yield from values_at(element, rest)
    elif isinstance(step, int):
        if isinstance(document, list) and step < len(document):
            yield from values_at(document[step], rest)
    elif isinstance(document, dict) and step in document:
        yield from values_at(document[step], rest)


def type_variants(value: Any) -> list[Any]:
    """PostHog's ``_get_type_variants``: the values an ``exact`` filter for ``value`` matches.

    A string adds the integer it spells (``"42"`` → 42, only when ``str(int)`` gives it back), the
    float it spells (``"4.5"``, ``"42.0"``), and ``True``/``False`` for ``"true"``/``"1"`` and
    ``"false"``/``"0"`` (any case); a boolean adds ``"true"``, ``"True"``, ``"1"`` (or the false ones);
    a number adds ``str(number)``. The original value always comes first."""
    variants: list[Any] = [value]
    if isinstance(value, str) and value.strip():
        stripped = value.strip()
        try:
            if str(int(stripped)) == stripped:
                variants.append(int(stripped))
        except ValueError:
            pass
        try:
            number = float(stripped)
            if str(number) == stripped or (stripped.endswith(".0") and str(number) == stripped[:-2]):
                variants.append(number)
        except ValueError:
            pass
        if stripped.lower() in ("true", "1"):
            variants.append(True)
        elif stripped.lower() in ("false", "0"):
            variants.append(False)
    elif isinstance(value, bool):
        variants.extend([str(value).lower(), str(value), "1" if value else "0"])
    elif isinstance(value, (int, float)):
        variants.append(str(value))
    unique: list[Any] = []
    for variant in variants:
        if not any(type(variant) is type(seen) and variant == seen for seen in unique):
            unique.append(variant)
    return unique


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values as PostgreSQL's ``jsonb`` has it: numbers by value (1 == 1.0), booleans
    apart from numbers, strings apart from everything else, lists and objects element by element."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return float(left) == float(right)
    if isinstance(left, str) or isinstance(right, str):
        return isinstance(left, str) and isinstance(right, str) and left == right
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return False


def text_form(value: Any) -> str:
    """What ``contains`` searches: a string as is, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# A literal that appears verbatim in the stored JSON text whenever a string value equals/contains it:
