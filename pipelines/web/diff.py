"""Readable differences between a change's before and after (values of the ``detail`` JSON).

    describe(before, after) → Diff(kind, lines)

``kind``: ``text`` (two strings: word runs kept, removed, added), ``object`` (keys added, removed,
changed, each with its own diff), ``list`` (elements added and removed, by JSON equality), ``value``
(anything else: before → after) or ``masked`` (the field is masked: neither side is shown).
Nothing here escapes HTML: the templates do (autoescape), so a value is always shown as text.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

from transforms.changes import MASKED

MAX_DEPTH = 6          # nested object diffs beyond this are shown as before → after
MAX_ITEMS = 500        # keys or list elements compared; beyond that, before → after


@dataclass(frozen=True)
class Piece:
    op: str        # "same", "removed", "added"
    text: str


@dataclass(frozen=True)
class Diff:
    kind: str                                          # text, object, list, value, masked
    pieces: tuple[Piece, ...] = ()                     # text
    entries: tuple[tuple[str, str, Any], ...] = ()     # object: (key, "added"|"removed"|"changed", value|Diff)
    added: tuple[str, ...] = ()                        # list: JSON text of elements
    removed: tuple[str, ...] = ()
    before: str | None = None                          # value: JSON text (None: absent)
    after: str | None = None


def show(value: Any) -> str:
    """A value as the page prints it: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _text(before: str, after: str) -> Diff:
    left, right = re.findall(r"\s+|\S+", before), re.findall(r"\s+|\S+", after)
    pieces: list[Piece] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            pieces.append(Piece("same", "".join(left[i1:i2])))
            continue
        if i2 > i1:
            pieces.append(Piece("removed", "".join(left[i1:i2])))
        if j2 > j1:
            pieces.append(Piece("added", "".join(right[j1:j2])))
    return Diff("text", pieces=tuple(pieces))


def describe(before: Any, after: Any, *, masked: bool = False, depth: int = 0) -> Diff:
    if masked or before == MASKED or after == MASKED:
        return Diff("masked")
    if isinstance(before, str) and isinstance(after, str) and len(before) + len(after) <= 20_000:
        return _text(before, after)
    if (isinstance(before, dict) and isinstance(after, dict) and depth < MAX_DEPTH
            and len(before) + len(after) <= MAX_ITEMS):
        entries: list[tuple[str, str, Any]] = []
        for name in sorted(set(before) | set(after)):
            if name not in before:
                entries.append((name, "added", show(after[name])))
            elif name not in after:
                entries.append((name, "removed", show(before[name])))
            elif _key(before[name]) != _key(after[name]):
                entries.append((name, "changed", describe(before[name], after[name], depth=depth + 1)))
        return Diff("object", entries=tuple(entries))
    if isinstance(before, list) and isinstance(after, list) and len(before) + len(after) <= MAX_ITEMS:
        left = [_key(v) for v in before]
        right = [_key(v) for v in after]
        return Diff("list", added=_unmatched(right, after, left), removed=_unmatched(left, before, right))
    return Diff("value", before=None if before is None else show(before), after=None if after is None else show(after))


def parse_detail(text: str | None) -> dict:
    """The ``detail`` JSON text of a row as an object (an empty one when absent or not an object)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def changes_of(detail: dict) -> list[dict]:
    """Each change of the detail: field, action, and the diff of its before and after."""
    out = []
    for change in detail.get("changes") or []:
        if not isinstance(change, dict):
            continue
        before, after = change.get("before"), change.get("after")
        out.append({"field": show(change.get("field")) if change.get("field") is not None else "",
                    "action": show(change.get("action") or ""), "type": change.get("type"),
                    "diff": describe(before, after),
                    "before": None if before is None else show(before),
                    "after": None if after is None else show(after)})
    return out


def _unmatched(texts: list[str], values: list, other: list[str]) -> tuple:
    """The values (shown) whose text has no counterpart left in ``other``: a multiset difference, so
    an item twice on one side and once on the other counts once."""
    remaining = list(other)
    out = []
    for text, value in zip(texts, values):
        if text in remaining:
            remaining.remove(text)
        else:
            out.append(show(value))
    return tuple(out)
