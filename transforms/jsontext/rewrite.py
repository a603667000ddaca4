"""Rewriting a stored JSON text: top-level members set to new values, or strings replaced in place,
every other byte kept."""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from transforms.jsontext.display import _LONE
from transforms.jsontext.surrogates import prepare, restore

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
