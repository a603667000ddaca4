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
"""

from __future__ import annotations

import json
import re
from operator import attrgetter
from typing import Any, Iterable, Sequence

import msgspec
import polars as pl

#: Deepest nesting of arrays/objects accepted anywhere in an event (the line itself is level 1).
MAX_DEPTH = 256
#: Lines decoded per msgspec call (one JSON array of lines): bounds the memory of one call.
CHUNK_ROWS = 16_384

ABSENT = msgspec.Raw(b"")  # default of a Raw field: the key was not in the object

_HEX = "[0-9a-fA-F]"
# An escape is a backslash preceded by an even number of backslashes (``\\\\ud800`` is text).
_UNPAIRED = re.compile(
    rf"(?<!\\)((?:\\\\)*)\\u([dD][89abAB]{_HEX}{{2}})(?!\\u[dD][c-fC-F]{_HEX}{{2}})"
    rf"|(?<!\\)((?:\\\\)*)(?<!\\u[dD][89abAB]{_HEX}{{2}})\\u([dD][c-fC-F]{_HEX}{{2}})"
)


class JSONProblem(ValueError):
    """A text that is not an acceptable JSON object; the message is the quarantine reason."""


# ----------------------------------------------------------------------------------------------
# Unpaired surrogates
#
# ``prepare`` swaps each unpaired escape ``\udXYZ`` for ``\ucXYZ`` where ``c`` is the first hex digit
# of a block of 2,048 code points (``c800``–``cfff``) that the text does not use at all, neither as
# characters nor as escapes; the *stand-in key* names the block (the letter ``e``, ``f``, ``a``,
# ``b`` or ``c``, which keeps the case of ``d``/``D``; or a numeral and the case of ``d``). The key is
# what ``restore`` and ``as_text`` need to undo the swap exactly.

_LETTER_BLOCKS = "efabc"
_NUMERAL_BLOCKS = "0123456789"


def _block(digit: str) -> tuple[int, int]:
    low = int(digit, 16) * 0x1000 + 0x800
    return low, low + 0x7FF


def _block_chars(digit: str) -> re.Pattern:
    low, high = _block(digit)
    return re.compile(f"[{chr(low)}-{chr(high)}]")


def _block_escapes(digit: str) -> re.Pattern:
    return re.compile(rf"\\u[{digit.lower()}{digit.upper()}][89a-fA-F]{_HEX}{{2}}")


_BLOCK_CHARS = {d: _block_chars(d) for d in _LETTER_BLOCKS + _NUMERAL_BLOCKS}
_BLOCK_ESCAPES = {d: _block_escapes(d) for d in _LETTER_BLOCKS + _NUMERAL_BLOCKS}
_ESCAPED_IN_BLOCK = {d: re.compile(rf"(?<!\\)((?:\\\\)*)\\u([{d.lower()}{d.upper()}][89a-fA-F]{_HEX}{{2}})")
                     for d in _LETTER_BLOCKS + _NUMERAL_BLOCKS}


def _free(text: str, digit: str) -> bool:
    return _BLOCK_CHARS[digit].search(text) is None and _BLOCK_ESCAPES[digit].search(text) is None


def _stand_in_key(text: str, cases: set[str]) -> str | None:
    for digit in _LETTER_BLOCKS:
        if _free(text, digit):
            return digit
    if len(cases) == 1:  # a numeral has no case: it can stand for one case of d
        for digit in _NUMERAL_BLOCKS:
            if _free(text, digit):
                return digit + cases.pop()
    return None


def prepare(text: str) -> tuple[str, str | None]:
    """The text msgspec can read, and the stand-in key (None when the text holds no unpaired
    surrogate escape). Raises :class:`JSONProblem` when no block is free (a text that uses every
    candidate block and holds unpaired surrogates)."""
    if "\\u" not in text:
        return text, None
    matches = list(_UNPAIRED.finditer(text))
    if not matches:
        return text, None
    cases = {(m.group(2) or m.group(4))[0] for m in matches}
    key = _stand_in_key(text, cases)
    if key is None:
        raise JSONProblem("invalid JSON: holds unpaired UTF-16 surrogates and characters of every block that "
                          "could stand in for them")
    digit = key[0]

    def swap(match: re.Match) -> str:
        backslashes, digits = (match.group(1), match.group(2)) if match.group(2) is not None else \
            (match.group(3), match.group(4))
        first = digit if digit in _NUMERAL_BLOCKS else (digit.upper() if digits[0] == "D" else digit.lower())
        return f"{backslashes}\\u{first}{digits[1:]}"

    return _UNPAIRED.sub(swap, text), key


def restore(raw: str, key: str | None) -> str:
    """A raw slice of a prepared text with its original surrogate escapes back."""
    if not key:
        return raw
    digit = key[0]

    def back(match: re.Match) -> str:
        digits = match.group(2)
        first = key[1] if len(key) > 1 else ("D" if digits[0].isupper() else "d")
        return f"{match.group(1)}\\u{first}{digits[1:]}"

    return _ESCAPED_IN_BLOCK[digit].sub(back, raw)


def as_text(value: str, key: str | None) -> str:
    """A string decoded from a prepared text, as plain text: each unpaired surrogate is U+FFFD."""
    return _BLOCK_CHARS[key[0]].sub("\ufffd", value) if key else value


def has_surrogate(value: str | None, key: str | None) -> bool:
    """Whether a string decoded from a prepared text held an unpaired surrogate."""
    return bool(key) and value is not None and _BLOCK_CHARS[key[0]].search(value) is not None


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


def json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


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


# ----------------------------------------------------------------------------------------------
# Display

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


# ----------------------------------------------------------------------------------------------
# Rewriting members of an object

_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])


def has_member(text: str, name: str) -> bool:
    """Whether a JSON object text has a top-level member ``name``."""
    readable, _ = prepare(text)
    return name in _MEMBERS.decode(readable)


def replace_members(text: str, values: dict[str, Any]) -> str:
    """A JSON object text with top-level members set to new values (Python values, encoded). Every
    other member keeps its exact JSON text; a repeated key keeps its last value (the rule every
    reader applies); spacing between members is not kept."""
    readable, key = prepare(text)
    members = _MEMBERS.decode(readable)
    for name, value in values.items():
        members[name] = msgspec.Raw(msgspec.json.encode(value))
    return restore(msgspec.json.encode(members).decode(), key)


# ----------------------------------------------------------------------------------------------
# Rewriting strings in place

# A string token, or a bracket (outside strings a JSON text holds no quote and no backslash, so the
# tokens are found in order by one scan).
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_LENIENT_STRING = json.JSONDecoder(strict=False)  # a quarantined line may hold raw control characters
_COLON = re.compile(r"[ \t\r\n]*:")


_BYTE_STAND_INS = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, read with "surrogateescape"


def _encode_string(value: str, raw_bytes: bool = False) -> str:
    """A string as a JSON string token: quotes, backslashes and controls escaped, unpaired surrogates
    as ``\\udXYZ`` escapes (their only JSON form), every other character as itself (``raw_bytes``:
    the stand-ins of undecodable bytes too, so they encode back to the same bytes)."""
    encoded = json.dumps(value, ensure_ascii=False)
    return _LONE.sub(lambda m: m.group() if raw_bytes and _BYTE_STAND_INS.match(m.group()) else
                     f"\\u{ord(m.group()):04x}", encoded)


def replace_strings(text: str, function, *, raw_bytes: bool = False) -> str:
    """A JSON text with each string — object keys and values, at any depth — passed through
    ``function(value, member)``, where ``value`` is the decoded string (escapes read, unpaired
    surrogates as lone code points) and ``member`` the top-level member it lies in (None for the
    top-level keys themselves, and in a text that is not an object). A string the function returns
    unchanged keeps its exact token; numbers, literals, spacing and every other byte are kept too.

    On a text that is not JSON the quoted parts are treated as strings and the rest is kept;
    ``raw_bytes``: the text was decoded from bytes with ``errors="surrogateescape"``, and the stand-ins
    of bytes that are not UTF-8 stay as they are in a rewritten string."""
    pieces: list[str] = []
    position = level = 0
    member: str | None = None
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token[0] != '"':
            level += 1 if token in "[{" else -1
            continue
        inner = token[1:-1]
        if "\\" in inner:
            try:
                value = _LENIENT_STRING.decode(token)
            except ValueError:
                continue  # not a readable string token: kept as it is
        else:
            value = inner
        is_top_key = level == 1 and _COLON.match(text, match.end()) is not None
        if is_top_key:
            member = value
        replaced = function(value, None if is_top_key else (member if level >= 1 else None))
        if replaced != value:
            pieces += [text[position:match.start()], _encode_string(replaced, raw_bytes)]
            position = match.end()
    if position == 0:
        return text
    pieces.append(text[position:])
    return "".join(pieces)
