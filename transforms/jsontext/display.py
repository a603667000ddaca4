"""JSON texts and decoded values shown to people (a summary sentence, a template, a message): never
stored, never re-encoded."""

from __future__ import annotations

import json
import re
from typing import Any

import polars as pl

from transforms.jsontext.surrogates import _HEX

_ESCAPE = re.compile(rf"(?<!\\)((?:\\\\)*)\\u([dD][89abAB]{_HEX}{{2}})\\u([dD][c-fC-F]{_HEX}{{2}})"
                     rf"|(?<!\\)((?:\\\\)*)\\u({_HEX}{{4}})")


def _shown_escape(match: re.Match) -> str:
    if match.group(2) is not None:
        high, low = int(match.group(2), 16), int(match.group(3), 16)
        return match.group(1) + chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
    code = int(match.group(5), 16)
    char = chr(code)
    if code < 0x80 or 0xD800 <= code <= 0xDFFF or not char.isprintable():
        return match.group(0)  # quotes, backslashes, controls, unpaired surrogates stay escaped
    return match.group(4) + char


def readable(texts: pl.Series) -> pl.Series:
    """JSON texts for people to read (a summary sentence): ``\\u00fc`` shows as ``ü``. Display only;
    the stored JSON text is never changed."""
    escaped = texts.str.contains("\\u", literal=True).fill_null(False)
    if not escaped.any():
        return texts
    values = texts.to_list()
    for index in escaped.arg_true().to_list():
        values[index] = _ESCAPE.sub(_shown_escape, values[index])
    return pl.Series(texts.name, values, dtype=pl.String)


_LONE = re.compile("[\ud800-\udfff]")


def shown(value: Any) -> Any:
    """A decoded value for people (a template, a message): unpaired surrogates read as U+FFFD."""
    if isinstance(value, str):
        return _LONE.sub("\ufffd", value)
    if isinstance(value, list):
        return [shown(v) for v in value]
    if isinstance(value, dict):
        return {shown(k): shown(v) for k, v in value.items()}
    return value


def display(value: Any) -> str:
    """A decoded value as JSON text for people (a message), never stored: see :func:`readable`."""
    return _LONE.sub("\ufffd", json.dumps(value, ensure_ascii=False))


def loads_shown(text: str) -> Any:
    """A stored JSON text decoded for people: :func:`loads`, then :func:`shown` where it is needed."""
    value = json.loads(text)
    return shown(value) if "\\u" in text else value
