"""Canonical JSON (RFC 8785, JCS): the ``rfc8785`` package's, or a faster encoder where the two give the
same bytes (plain values), decided per value or on many texts at once; numbers written as ECMAScript
writes them."""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import polars as pl
import rfc8785


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


def fast_canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) of a *plain* value (:func:`_plain`): ``msgspec``'s sorted encoding, which equals it
    there (the tests check it against ``rfc8785`` over arbitrary plain JSON)."""
    return _SORTED.encode(value)
