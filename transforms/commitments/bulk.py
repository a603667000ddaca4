"""Leaves in bulk: :func:`build_leaves` gives :func:`build_leaf`'s bytes for many stored payloads at a
fraction of its cost (plainness decided on the texts at once, plain leaves written directly)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Iterable, Mapping

import msgspec
import polars as pl

from transforms.commitments.canonical import (
    _DECODE,
    _SORTED,
    CommitmentError,
    _NotRepresentable,
    jcs_numbers,
    number_only_texts,
    plain_texts,
)
from transforms.commitments.leaves import (
    ACTOR_FIELDS,
    LEAF_VERSION,
    SALT_SIZE,
    Leaf,
    _get,
    build_leaf,
    personal_paths,
    redact,
)


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
