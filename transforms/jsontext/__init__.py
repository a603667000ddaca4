"""JSON text, exactly: nested values are cut out of the line verbatim, never rebuilt by hand.

Every stage that reads an event's JSON (ingest's key fields, normalize's typed columns, the changes'
``before``/``after``) decodes with msgspec, which hands a nested value back as ``msgspec.Raw``: the
exact bytes of the value as they were received. So ``detail`` and every ``before``/``after`` keep
their escapes, control characters, NUL, U+2028/2029, surrogate pairs, numbers of any size or
precision (``1e999``, ``12345678901234567890123``, ``1.50``) and key order, byte for byte.

The rules, applied everywhere (ingest rejects what a later stage could not read):

- Standard JSON only (RFC 8259): ``NaN``, ``Infinity``, comments, trailing commas are invalid.
- Nesting deeper than :data:`MAX_DEPTH` levels is rejected.
- Duplicate keys: the *last* occurrence wins (as in JavaScript's ``JSON.parse`` and Python's
  ``json``); the verbatim payload keeps both.
- Unpaired UTF-16 surrogate escapes (``"\\ud800"``, what a JavaScript client emits for a string
  cut in the middle of an emoji) are valid JSON but not text. Inside JSON values (``detail``,
  ``before``/``after``) they are kept exactly, as escapes. Where a value becomes plain text (a
  ``detail_name``, an ``actor_email``, ``before_text``) each one reads as U+FFFD. In the key fields
  (``id``, ``scope``…) they are rejected. To let msgspec (which refuses them) read such a line, each
  unpaired escape ``\\udXYZ`` is swapped for the private-use escape ``\\ueXYZ`` of the same length
  before decoding and swapped back in the raw slices after; a line that already holds characters
  of that private-use range (U+E800–U+EFFF) as well as unpaired surrogates is rejected.

The surrogate stand-ins live in :mod:`transforms.jsontext.surrogates`, the texts shown to people in
:mod:`transforms.jsontext.display`, rewriting stored texts in :mod:`transforms.jsontext.rewrite`; depth,
the reasons a text is not JSON, raw values and decoding many texts here.
"""

from __future__ import annotations

import json
import re
from operator import attrgetter
from typing import Any

import msgspec
import polars as pl

from transforms.jsontext.display import display, loads_shown, readable, shown  # noqa: F401  (re-exported)
from transforms.jsontext.rewrite import has_member, replace_members, replace_strings  # noqa: F401
from transforms.jsontext.surrogates import JSONProblem, as_text, has_surrogate, prepare, restore  # noqa: F401

#: Deepest nesting of arrays/objects accepted anywhere in an event (the line itself is level 1).
MAX_DEPTH = 256
#: Lines decoded per msgspec call (one JSON array of lines): bounds the memory of one call.
CHUNK_ROWS = 16_384

ABSENT = msgspec.Raw(b"")  # default of a Raw field: the key was not in the object


# ----------------------------------------------------------------------------------------------
# Depth


def depth(text: str) -> int:
    """How deeply arrays/objects nest in a JSON text (brackets inside strings do not count)."""
    deepest = level = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            level += 1
            deepest = max(deepest, level)
        elif char in "]}":
            level -= 1
    return deepest


def too_deep(texts: pl.Series) -> pl.Series:
    """True for texts nested deeper than MAX_DEPTH (a cheap bracket count first, exact on the few)."""
    brackets = texts.str.count_matches(r"[\[{]").fill_null(0)
    suspects = brackets > MAX_DEPTH
    if not suspects.any():
        return pl.Series(values=[False] * texts.len(), dtype=pl.Boolean)
    flags = [False] * texts.len()
    for index in suspects.arg_true().to_list():
        flags[index] = depth(texts[index]) > MAX_DEPTH
    return pl.Series(values=flags, dtype=pl.Boolean)


# ----------------------------------------------------------------------------------------------
# Why a text is not JSON


def why_not_json(text: str, decoder_error: Exception | None = None) -> str:
    """The quarantine reason for a text msgspec refused (Python's precise message where it has one)."""
    try:
        json.loads(text, parse_constant=_refuse_constant)
    except _Constant as exc:
        column = _column(text, decoder_error)
        return f"invalid JSON at column {column}: {exc.args[0]} is not a JSON value" if column else \
            f"invalid JSON: {exc.args[0]} is not a JSON value"
    except json.JSONDecodeError as exc:
        return f"invalid JSON at column {exc.colno}: {exc.msg}"
    except RecursionError:
        return f"invalid JSON: nested deeper than {MAX_DEPTH} levels"
    message = str(decoder_error) if decoder_error else "not readable"
    if "recursion" in message:
        return f"invalid JSON: nested deeper than {MAX_DEPTH} levels"
    return f"invalid JSON: {message}"


class _Constant(Exception):
    pass


def _refuse_constant(name: str) -> None:
    raise _Constant(name)


def _column(text: str, error: Exception | None) -> int | None:
    match = re.search(r"\(byte (\d+)\)", str(error or ""))
    if not match:
        return None
    return len(text.encode()[: int(match.group(1))].decode(errors="ignore")) + 1


def json_type(value: Any) -> str:
    """The JSON type of a decoded value: ``null``, ``boolean``, ``number``, ``string``, ``array``,
    ``object`` (``unknown`` for anything JSON does not decode to)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "unknown"


_WITH_ARTICLE = {"object": "an object", "array": "an array", "string": "a string", "boolean": "a boolean",
                 "null": "null"}


def json_kind(value: Any) -> str:
    """The JSON type as a message says it (``an object``, ``a number``…)."""
    return _WITH_ARTICLE.get(json_type(value), "a number")


# ----------------------------------------------------------------------------------------------
# Raw values


def raw_kind(raw: bytes) -> str | None:
    """``string, number, boolean, object, array, null`` from a raw value's first byte; None if absent."""
    if not raw:
        return None
    return _KINDS.get(raw[:1], "number")


_KINDS = {b'"': "string", b"{": "object", b"[": "array", b"t": "boolean", b"f": "boolean", b"n": "null"}


def raw_text(raw: bytes, prepared: str | None = None) -> str | None:
    """A raw value as text: a string's characters, any other value's JSON text, None for null/absent."""
    if not raw or raw == b"null":
        return None
    if raw[:1] == b'"':
        value = msgspec.json.decode(raw)
        return as_text(value, prepared)
    return restore(raw.decode(), prepared)


def raw_json(raw: bytes, prepared: str | None = None) -> str | None:
    """A raw value's exact JSON text (None when absent)."""
    if not raw:
        return None
    return restore(raw.decode(), prepared)


def encode(value: Any) -> str:
    """JSON text of a value built by this package (``msgspec.Raw`` parts are embedded verbatim)."""
    return msgspec.json.encode(value, enc_hook=str).decode()


def embed(text: str | None) -> msgspec.Raw | None:
    """A stored JSON text (``detail``, ``before``…) to place inside an encoded document, unchanged."""
    return None if text is None else msgspec.Raw(text.encode())


def loads(text: str) -> Any:
    """A stored JSON text as Python values for inspection (filters, summaries), never to re-encode:
    numbers beyond a float's range read as ±inf and unpaired surrogates as lone code points."""
    return json.loads(text)


# ----------------------------------------------------------------------------------------------
# Decoding many texts


def decode_many(texts: pl.Series, decoder: tuple[msgspec.json.Decoder, msgspec.json.Decoder],
                lenient: msgspec.json.Decoder | None = None) -> tuple[list[Any], list[str | None], list[str | None]]:
    """Decode each text of a String column with ``decoder`` (the pair :func:`decoders` makes).
    Returns (objects, reasons, stand-in keys) per text (see :func:`prepare`; None for most texts): a text that cannot be read has None and a
    reason; ``lenient`` (a one-object decoder, e.g. every field ``msgspec.Raw``) is tried on texts
    whose *types* do not fit ``decoder`` before giving up.

    Fast path: texts are decoded in one comprehension per chunk; the texts that may hold unpaired
    surrogates (found by one vectorized look), and the chunks where a text fails, text by text.
    """
    careful = set(texts.str.contains(r"\\u[dD][89a-fA-F]").fill_null(False).arg_true().to_list()) \
        if texts.len() else set()
    return decode_values(texts.cast(pl.Binary).to_list(), decoder, lenient, careful)


def decode_values(values: list[bytes | None], decoder: tuple[msgspec.json.Decoder, msgspec.json.Decoder],
                  lenient: msgspec.json.Decoder | None = None, careful: set[int] | None = None,
                  ) -> tuple[list[Any], list[str | None], list[str | None]]:
    """:func:`decode_many` on UTF-8 texts (None: no text); ``careful``: indexes of texts that may
    hold unpaired surrogate escapes (None: look at every text)."""
    single = decoder[1].decode
    count = len(values)
    objects: list[Any] = [None] * count
    reasons: list[str | None] = [None] * count
    prepared: list[str | None] = [None] * count
    if careful is None:
        careful = {i for i, v in enumerate(values) if v is not None and (b"\\ud" in v or b"\\uD" in v)}
    for start in range(0, count, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, count)
        if not careful or not any(index in careful for index in range(start, stop)):
            try:
                objects[start:stop] = [single(v) for v in values[start:stop]]
                continue
            except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
                pass
        for index in range(start, stop):
            if values[index] is None:
                reasons[index] = "no JSON text"
                continue
            objects[index], reasons[index], prepared[index] = _decode_one(values[index].decode(), decoder[1], lenient)
    return objects, reasons, prepared


def _decode_one(text: str, single: msgspec.json.Decoder, lenient: msgspec.json.Decoder | None
                ) -> tuple[Any, str | None, str | None]:
    try:
        readable, prepared = prepare(text)
    except JSONProblem as exc:
        return None, str(exc), None
    try:
        return single.decode(readable), None, prepared
    except msgspec.ValidationError as exc:
        if lenient is not None:
            try:
                return lenient.decode(readable), None, prepared
            except msgspec.ValidationError as again:
                return None, _not_an_object(readable, again), prepared
            except msgspec.DecodeError as again:
                return None, why_not_json(text, again), prepared
        return None, str(exc), prepared
    except msgspec.DecodeError as exc:
        return None, why_not_json(text, exc), prepared


def _not_an_object(text: str, error: Exception) -> str:
    try:
        value = msgspec.json.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return f"invalid JSON: {error}"
    if not isinstance(value, dict):
        return f"not a JSON object (found {json_kind(value)})"
    return f"invalid JSON: {error}"


def decoders(struct: type) -> tuple[msgspec.json.Decoder, msgspec.json.Decoder]:
    """The (array of objects, one object) decoders of a msgspec Struct."""
    return msgspec.json.Decoder(list[struct]), msgspec.json.Decoder(struct)


def column(objects: list[Any], name: str, *, complete: bool = False) -> list[Any]:
    """One field of decoded objects (None where the object is None; ``complete``: there is none)."""
    if complete:
        return list(map(attrgetter(name), objects))
    return [None if o is None else getattr(o, name) for o in objects]
