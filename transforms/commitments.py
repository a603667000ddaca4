"""Leaves that commit to an event and survive the erasure of its personal data.

A leaf does not hash the event's personal data directly. Each personal field gets a salted commitment
``SHA-256(salt ‖ JCS(value))`` with a fresh random 32-byte salt (per field, per event); the rest of the
event is hashed as a whole. Erasure deletes the plaintext and the salts, never the leaf: what is left
(commitments without salts) says nothing about the values, yet the rest of the event still matches the
leaf, and every tree head and proof that covered the leaf stays valid.

Personal fields (JSON pointers, RFC 6901): ``/user/id``, ``/user/uuid``, ``/user/email``,
``/user/first_name``, ``/user/last_name``, ``/ip_address`` when present and not null, and every string
inside ``/detail`` that holds an email address (anyone's: an invite, a membership change) or contains
the actor's uuid, email or IP address, or equals their first or last name. A string in ``detail`` that
mentions a value is committed as a whole.

The *redacted* event is the event with every committed path set to ``null`` (parents created as
objects where an erasure removed them). The leaf is the RFC 8785 (JCS) canonical form of::

    {"v": 1, "commitments": {pointer: hex commitment, ...}, "rest": hex SHA-256(JCS(redacted event))}

so it names the committed paths; an erased event is checked by redacting the same paths, whatever
values (or absence of values) erasure left there.

Salts are kept in ``merkle_salts`` (``event_id``, ``day``, ``path``, ``salt``), apart from the leaves,
so erasure and retention delete them by event id or day.

Canonical JSON is RFC 8785 via the ``rfc8785`` package. JSON numbers must be what JCS can represent
(IEEE 754 doubles; integers beyond 2^53 are refused), as the RFC requires.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
from dataclasses import dataclass
from datetime import date
from itertools import repeat
from typing import Any, Iterable, Mapping

import msgspec
import polars as pl
import rfc8785

from transforms.lake import Lake

MERKLE_SALTS = "merkle_salts"
SALT_SIZE = 32
LEAF_VERSION = 1
SALTS_SCHEMA = {"event_id": pl.String, "day": pl.Date, "path": pl.String, "salt": pl.Binary}

#: The actor's fields, always committed when present and not null.
ACTOR_FIELDS = ("/user/id", "/user/uuid", "/user/email", "/user/first_name", "/user/last_name", "/ip_address")
EMAIL_PATTERN = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")


class CommitmentError(Exception):
    """An event that does not match its leaf, or a leaf that is not one of ours."""


_SAFE_INTEGER = 2 ** 53 - 1
_FAST = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, check_circular=False,
                         allow_nan=False)


def _plain(value: Any) -> bool:
    """True when the standard library's sorted, compact, non-ASCII JSON of ``value`` *is* its RFC 8785
    form: no floats (ECMAScript number formatting), integers in the safe range, no surrogates, and
    object keys within the Basic Multilingual Plane (so code point order is UTF-16 order)."""
    stack = [value]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is str:
            if not node.isascii() and any(0xD800 <= ord(c) <= 0xDFFF for c in node):
                return False
        elif kind is dict:
            for key, item in node.items():
                if type(key) is not str or (not key.isascii() and any(ord(c) > 0xD7FF for c in key)):
                    return False
                stack.append(item)
        elif kind is list:
            stack.extend(node)
        elif kind is int:
            if not -_SAFE_INTEGER <= node <= _SAFE_INTEGER:
                return False
        elif node is not None and kind is not bool:
            return False
    return True


def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON of ``value``: the ``rfc8785`` package's, or the standard library's
    encoder where the two agree (:func:`_plain`; the tests check they do), which is much faster."""
    if _plain(value):
        return _FAST.encode(value).encode()
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as error:
        raise CommitmentError(f"not canonicalizable as JSON (RFC 8785): {error}") from None


def commitment(salt: bytes, value: Any) -> bytes:
    """``SHA-256(salt ‖ JCS(value))``."""
    return hashlib.sha256(salt + canonical(value)).digest()


# ------------------------------------------------------------------------------------------- pointers

def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _tokens(pointer: str) -> list[str]:
    if not pointer.startswith("/"):
        raise CommitmentError(f"not a JSON pointer: {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


_MISSING = object()


def _get(doc: Any, pointer: str) -> Any:
    node = doc
    for token in _tokens(pointer):
        if isinstance(node, dict):
            if token not in node:
                return _MISSING
            node = node[token]
        elif isinstance(node, list):
            if not token.isdigit() or int(token) >= len(node):
                return _MISSING
            node = node[int(token)]
        else:
            return _MISSING
    return node


def _set_null(doc: dict, pointer: str, copied: set[int]) -> None:
    """Set the value at ``pointer`` to null; missing (or null) parent objects are created. Containers
    on the way are copied once (``copied`` holds the ids of those already copied)."""
    tokens = _tokens(pointer)
    node: Any = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            child = node.get(token)
            key: Any = token
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            key = int(token)
            child = node[key]
        else:
            raise CommitmentError(f"path {pointer} no longer exists in the event")
        if not isinstance(child, (dict, list)):
            if isinstance(node, list):
                raise CommitmentError(f"path {pointer} no longer exists in the event")
            child = {}
        elif id(child) not in copied:
            child = dict(child) if isinstance(child, dict) else list(child)
        copied.add(id(child))
        node[key] = child
        node = child
    last = tokens[-1]
    if isinstance(node, dict):
        node[last] = None
    elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = None
    else:
        raise CommitmentError(f"path {pointer} no longer exists in the event")


# ---------------------------------------------------------------------------------------- personal data

def personal_paths(event: Mapping[str, Any]) -> list[str]:
    """The JSON pointers of the event's personal data (see the module docs), sorted."""
    paths = [p for p in ACTOR_FIELDS if _get(event, p) not in (_MISSING, None)]
    user = event.get("user") if isinstance(event.get("user"), dict) else {}
    contained = [str(v) for v in (user.get("uuid"), user.get("email"), event.get("ip_address")) if v]
    contained_lower = [v.lower() for v in contained]
    names = {str(v) for v in (user.get("first_name"), user.get("last_name")) if v}

    def personal(text: str) -> bool:
        if text in names or EMAIL_PATTERN.search(text):
            return True
        lowered = text.lower()
        return any(v in lowered for v in contained_lower)

    def walk(node: Any, pointer: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{pointer}/{_escape(str(key))}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{pointer}/{i}")
        elif isinstance(node, str) and personal(node):
            paths.append(pointer)

    if "detail" in event:
        walk(event["detail"], "/detail")
    return sorted(set(paths))


def redact(event: Mapping[str, Any], paths: Iterable[str]) -> dict:
    """A copy of the event with every path in ``paths`` set to null (only the objects and arrays on
    those paths are copied; the event itself is left as it was)."""
    out = dict(event)
    copied: set[int] = {id(out)}
    for path in paths:
        _set_null(out, path, copied)
    return out


# ------------------------------------------------------------------------------------------------ leaves

@dataclass(frozen=True)
class Leaf:
    commitments: dict[str, bytes]  #: JSON pointer → commitment
    rest: bytes  #: SHA-256 of the redacted event's JCS

    def to_bytes(self) -> bytes:
        return canonical({"v": LEAF_VERSION, "commitments": {p: c.hex() for p, c in self.commitments.items()},
                          "rest": self.rest.hex()})

    @classmethod
    def from_bytes(cls, data: bytes) -> "Leaf":
        try:
            doc = json.loads(data)
            if doc.get("v") != LEAF_VERSION or set(doc) != {"v", "commitments", "rest"}:
                raise ValueError
            leaf = cls({p: bytes.fromhex(c) for p, c in doc["commitments"].items()}, bytes.fromhex(doc["rest"]))
        except (ValueError, TypeError, AttributeError):
            raise CommitmentError("not an event leaf") from None
        if leaf.to_bytes() != data:
            raise CommitmentError("leaf is not in canonical form")
        return leaf


def build_leaf(event: Mapping[str, Any], *, salts: Mapping[str, bytes] | None = None) -> tuple[bytes, dict[str, bytes]]:
    """The leaf bytes for ``event`` (a parsed JSON object) and the salts of its commitments (JSON
    pointer → 32 random bytes). ``salts`` may supply them (tests; re-deriving a known leaf)."""
    if not isinstance(event, Mapping):
        raise CommitmentError("an event is a JSON object")
    paths = personal_paths(event)
    used = {p: (salts[p] if salts is not None else os.urandom(SALT_SIZE)) for p in paths}
    commitments = {p: commitment(used[p], _get(event, p)) for p in paths}
    rest = hashlib.sha256(canonical(redact(event, paths))).digest()
    return Leaf(commitments, rest).to_bytes(), used


# ------------------------------------------------------------------------------------- leaves in bulk

#: A number token outside strings (after ``:``, ``,`` or ``[``, before ``,``, ``}`` or ``]``) that JCS
#: formats differently from :func:`_plain`'s encoder: a fraction or an exponent, an integer of 16 digits
#: or more (possibly beyond 2^53), or the ``NaN`` and ``Infinity`` the standard library's parser accepts.
#: Text inside a string can look like one (``"a:1.5,"``): that only sends the event the exact way.
_NOT_PLAIN_NUMBER = (r"[:,\[]\s*-?(?:[0-9]+(?:\.[0-9]+[eE][-+]?[0-9]+|\.[0-9]+|[eE][-+]?[0-9]+)|[0-9]{16,}"
                     r"|NaN|Infinity)\s*[,}\]]")
#: Text that may hold a surrogate (escaped; raw ones are not UTF-8) or a character outside the Basic
#: Multilingual Plane (where code point order and UTF-16 order of keys may differ).
_NOT_PLAIN_TEXT = r"\\u[dD][89abAB]|[\x{10000}-\x{10FFFF}]"
_SORTED = msgspec.json.Encoder(order="sorted")
_DECODE = msgspec.json.Decoder().decode


def plain_texts(payloads: pl.Series) -> pl.Series:
    """Per JSON object text, True when its parsed value is *plain* (:func:`_plain`), decided on the text
    with vectorized regular expressions. False may also mean "could not tell" (a string that looks like
    a number token, a character outside the Basic Multilingual Plane): those take the exact path, which
    gives the same bytes."""
    text = payloads.cast(pl.String)
    return (~text.str.contains(_NOT_PLAIN_NUMBER) & ~text.str.contains(_NOT_PLAIN_TEXT)).fill_null(False)


def number_only_texts(payloads: pl.Series) -> pl.Series:
    """Per JSON object text, True when only its numbers may keep it from being plain: no escaped
    surrogate and no character outside the Basic Multilingual Plane (:data:`_NOT_PLAIN_TEXT`). Such an
    event's RFC 8785 form is the sorted encoding with each number written as ECMAScript writes it
    (:func:`jcs_numbers`)."""
    return (~payloads.cast(pl.String).str.contains(_NOT_PLAIN_TEXT)).fill_null(False)


class _NotRepresentable(Exception):
    """An integer beyond ±(2^53 − 1) or a number beyond a double's range: the exact path decides."""


def es_number(value: float) -> str:
    """A finite double as ECMAScript's ``Number.prototype.toString`` writes it (RFC 8785 §3.2.2.3):
    the shortest digits that round-trip (Python's ``repr`` finds the same ones), placed by the rules
    of ECMA-262 §7.1.12.1 (plain up to 21 integer digits, down to 6 leading zeros; else ``1.5e+300``)."""
    if value == 0:
        return "0"
    text = repr(value)
    sign = "-" if text[0] == "-" else ""
    text = text.lstrip("-")
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + int(exponent or 0) - (len(whole + fraction) - len((whole + fraction).lstrip("0")))
    digits = digits.rstrip("0") or "0"  # k digits; the value is 0.d1…dk × 10^point
    k = len(digits)
    if k <= point <= 21:
        return sign + digits + "0" * (point - k)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    power = point - 1
    shown = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{sign}{shown}e{'+' if power > 0 else '-'}{abs(power)}"


_RAW = msgspec.Raw


def jcs_numbers(node: Any) -> Any:
    """``node`` with every float as its ECMAScript text (``msgspec.Raw``), so that the sorted encoding
    (:data:`_SORTED`) of the result is its RFC 8785 form; raises :class:`_NotRepresentable` for an
    integer beyond ±(2^53 − 1) or a non-finite number (RFC 8785 has no form for them)."""
    kind = type(node)
    if kind is dict:
        return {key: jcs_numbers(value) for key, value in node.items()}
    if kind is list:
        return [jcs_numbers(value) for value in node]
    if kind is float:
        if node != node or node in (math.inf, -math.inf):
            raise _NotRepresentable
        return _RAW(es_number(node).encode())
    if kind is int and not -_SAFE_INTEGER <= node <= _SAFE_INTEGER:
        raise _NotRepresentable
    return node


class _SaltSource:
    """Fresh salts cut from large reads of the operating system's CSPRNG (``os.urandom``): one read per
    64 KiB of salt instead of one per event."""

    CHUNK = 65_536

    def __init__(self, urandom=os.urandom) -> None:
        self._urandom, self._buffer, self._at = urandom, b"", 0

    def take(self, size: int) -> bytes:
        if self._at + size > len(self._buffer):
            self._buffer, self._at = self._urandom(max(self.CHUNK, size)), 0
        piece = self._buffer[self._at:self._at + size]
        self._at += size
        return piece


def fast_canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) of a *plain* value (:func:`_plain`): ``msgspec``'s sorted encoding, which equals it
    there (the tests check it against ``rfc8785`` over arbitrary plain JSON)."""
    return _SORTED.encode(value)


def _quick_paths(event: dict) -> list[str] | None:
    """The personal paths of an event whose detail holds no personal string, or None when the detail
    must be walked (it may hold one). Decided on the detail's JSON text: a string that holds an email
    address has an ``@``; one that contains the actor's uuid, email or IP address (case aside) or equals
    a name has that text; escapes (``\\``) or non-ASCII text make it undecidable here."""
    user = event.get("user")
    user = user if type(user) is dict else {}
    paths = [p for p, v in zip(ACTOR_FIELDS, (user.get("id"), user.get("uuid"), user.get("email"),
                                              user.get("first_name"), user.get("last_name"), event.get("ip_address")))
             if v is not None]
    if "detail" not in event:
        return paths
    detail = event["detail"]
    if detail is None or type(detail) in (int, bool):
        return paths
    text = _SORTED.encode(detail)
    if b"@" in text or b"\\" in text or not text.isascii():
        return None
    lowered = text.lower()
    for value in (user.get("uuid"), user.get("email"), event.get("ip_address")):
        if value and str(value).lower().encode() in lowered:
            return None
    for value in (user.get("first_name"), user.get("last_name")):
        if value and str(value).encode() in text:
            return None
    return paths


def _fast_leaf(event: dict, paths: list[str], salts: Mapping[str, bytes]) -> bytes:
    """:func:`build_leaf`'s bytes for a plain event, its JCS written directly."""
    encode, sha = _SORTED.encode, hashlib.sha256
    if not paths:
        return b'{"commitments":{},"rest":"%s","v":%d}' % (sha(encode(event)).hexdigest().encode(), LEAF_VERSION)
    parts = []
    redacted = dict(event)
    user = redacted.get("user")
    user = dict(user) if type(user) is dict else None
    if user is not None:
        redacted["user"] = user
    detail_paths = []
    for path in paths:
        if path.startswith("/user/") and user is not None and "/" not in path[6:] and "~" not in path:
            value, user[path[6:]] = user[path[6:]], None
        elif path == "/ip_address":
            value, redacted["ip_address"] = redacted["ip_address"], None
        else:
            value = _get(event, path)
            detail_paths.append(path)
        parts.append(b'%s:"%s"' % (encode(path), sha(salts[path] + encode(value)).hexdigest().encode()))
    if detail_paths:
        redacted = redact(redacted, detail_paths)
    rest = sha(encode(redacted)).hexdigest().encode()
    return b'{"commitments":{%s},"rest":"%s","v":%d}' % (b",".join(parts), rest, LEAF_VERSION)


def verbatim_leaf(text: str) -> bytes:
    """The leaf of an event RFC 8785 cannot represent (a number beyond what an IEEE double holds): no
    commitments, ``rest`` the SHA-256 of its stored text. It commits to the exact bytes, but an erasure
    that rewrites the event no longer matches it."""
    return Leaf({}, hashlib.sha256(text.encode()).digest()).to_bytes()


def _salts_for(paths: list[str], known: Mapping[str, bytes] | None, urandom) -> dict[str, bytes]:
    """Salts for ``paths``: the ``known`` ones, fresh ones from ``urandom(size)`` for the others."""
    if not paths:
        return {}
    if known:
        return {p: known[p] if p in known else urandom(SALT_SIZE) for p in paths}
    fresh = urandom(SALT_SIZE * len(paths))
    return {p: fresh[i * SALT_SIZE:(i + 1) * SALT_SIZE] for i, p in enumerate(paths)}


def build_leaves(payloads: pl.Series | Iterable[str], *,
                 salts: Iterable[Mapping[str, bytes] | None] | None = None) -> tuple[list[bytes], list[dict[str, bytes]]]:
    """:func:`build_leaf` over many JSON texts (an event's stored payload each): the leaf bytes and the
    salts, in order. ``salts`` may give, per event, salts to use (stored by an earlier, interrupted
    attempt); the paths they do not cover get fresh ones. The same bytes as :func:`build_leaf` (the
    tests check), at a fraction of its cost: plainness is decided on the texts at once
    (:func:`plain_texts`), and the leaf of a plain event is written directly with ``msgspec``."""
    series = payloads if isinstance(payloads, pl.Series) else pl.Series(list(payloads), dtype=pl.String)
    plain = plain_texts(series).to_list()
    numbers_only = number_only_texts(series).to_list()
    given = list(salts) if salts is not None else None
    if given is not None and len(given) != len(plain):
        raise CommitmentError("one salt mapping (or None) per event")
    loads, decode, urandom, quick = json.loads, _DECODE, _SaltSource().take, _quick_paths
    leaves: list[bytes] = []
    used_all: list[dict[str, bytes]] = []
    for position, (text, fast, numbers) in enumerate(zip(series.to_list(), plain, numbers_only)):
        event = None
        if numbers:  # msgspec reads standard JSON as json.loads does (a repeated key: the last), faster
            try:
                event = decode(text)
            except (msgspec.DecodeError, TypeError):
                event = None  # e.g. 1e999: json.loads reads it as infinity; the exact path decides
        if event is None:
            try:
                event = loads(text)
            except (TypeError, ValueError):
                raise CommitmentError(f"event {position} is not JSON") from None
        if type(event) is not dict:
            raise CommitmentError("an event is a JSON object")
        known = given[position] if given is not None else None
        leaf = None
        if numbers:
            try:  # a text judged plain that still cannot be encoded (a lone surrogate) takes the exact path
                ready = event if fast else jcs_numbers(event)
                paths = quick(ready)
                if paths is None:
                    paths = personal_paths(ready)
                else:
                    paths.sort()
                used = _salts_for(paths, known, urandom)
                leaf = _fast_leaf(ready, paths, used)
            except (UnicodeError, _NotRepresentable):
                leaf = None
        if leaf is None:
            try:
                used = _salts_for(personal_paths(event), known, os.urandom)
                leaf = build_leaf(event, salts=used)[0]
            except (CommitmentError, UnicodeError):  # JCS cannot represent it (an integer beyond 2^53,
                leaf, used = verbatim_leaf(text), {}  # a lone surrogate): the leaf is over its exact text
        leaves.append(leaf)
        used_all.append(used)
    return leaves, used_all


def _check_rest(event: Mapping[str, Any], leaf: Leaf) -> None:
    rest = hashlib.sha256(canonical(redact(event, leaf.commitments))).digest()
    if not hmac.compare_digest(rest, leaf.rest):
        raise CommitmentError("the event's non-personal content does not match its leaf")


def verify_event(event: Mapping[str, Any], leaf_bytes: bytes, salts: Mapping[str, bytes]) -> None:
    """Check a whole event (personal data included) against its leaf, given its salts. Raises
    :class:`CommitmentError` naming the first field that does not match."""
    leaf = Leaf.from_bytes(leaf_bytes)
    if set(salts) != set(leaf.commitments):
        raise CommitmentError("the salts do not belong to this leaf's committed fields")
    if set(personal_paths(event)) - set(leaf.commitments):
        raise CommitmentError("the event has personal data its leaf does not commit to")
    for path, expected in leaf.commitments.items():
        value = _get(event, path)
        if value is _MISSING or not hmac.compare_digest(commitment(salts[path], value), expected):
            raise CommitmentError(f"{path} does not match its commitment")
    _check_rest(event, leaf)


def verify_erased_event(event: Mapping[str, Any], leaf_bytes: bytes) -> None:
    """Check an event whose personal data was erased (values changed or removed at the committed paths,
    salts gone) against its leaf: everything but the committed fields must match."""
    _check_rest(event, Leaf.from_bytes(leaf_bytes))


def verify_field(path: str, value: Any, salt: bytes, leaf_bytes: bytes) -> None:
    """Check one disclosed personal value against the leaf's commitment for ``path``."""
    leaf = Leaf.from_bytes(leaf_bytes)
    expected = leaf.commitments.get(path)
    if expected is None or not hmac.compare_digest(commitment(salt, value), expected):
        raise CommitmentError(f"{path} does not match its commitment")


# -------------------------------------------------------------------------------------------------- salts

def salts_frame(rows: Iterable[tuple[str, date, Mapping[str, bytes]]]) -> pl.DataFrame:
    """Salt rows for ``merkle_salts`` from ``(event_id, day, salts)``."""
    ids: list[str] = []
    days: list[date] = []
    paths: list[str] = []
    values: list[bytes] = []
    for event_id, day, salts in rows:
        if salts:
            ids.extend(repeat(event_id, len(salts)))
            days.extend(repeat(day, len(salts)))
            paths.extend(salts)
            values.extend(salts.values())
    return pl.DataFrame({"event_id": ids, "day": days, "path": paths, "salt": values}, schema=SALTS_SCHEMA)


def write_salts(lake: Lake, frame: pl.DataFrame) -> None:
    """Append salt rows (partitioned by day, so retention drops whole partitions)."""
    lake.append(MERKLE_SALTS, frame.select(list(SALTS_SCHEMA)), partition_by=["day"])


def read_salts(lake: Lake, event_id: str, day: date | None = None) -> dict[str, bytes]:
    """An event's salts (empty once erased or expired)."""
    scan = lake.scan(MERKLE_SALTS)
    if scan is None:
        return {}
    if day is not None:
        scan = scan.filter(pl.col("day") == day)
    rows = scan.filter(pl.col("event_id") == event_id).select("path", "salt").collect()
    return dict(rows.iter_rows())


def delete_salts(lake: Lake, event_ids: Iterable[str]) -> None:
    """Delete the salts of the given events (erasure): their commitments can no longer be opened."""
    table = lake.table(MERKLE_SALTS)
    ids = sorted(set(event_ids))
    if table is None or not ids:
        return
    quoted = ", ".join("'" + i.replace("'", "''") + "'" for i in ids)
    table.delete(f"event_id IN ({quoted})")
