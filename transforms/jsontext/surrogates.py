"""Unpaired UTF-16 surrogate escapes: swapped for stand-in escapes msgspec can read before decoding,
swapped back in the raw slices after (see :mod:`transforms.jsontext`)."""

from __future__ import annotations

import re

_HEX = "[0-9a-fA-F]"
# An escape is a backslash preceded by an even number of backslashes (``\\\\ud800`` is text).
_UNPAIRED = re.compile(
    rf"(?<!\\)((?:\\\\)*)\\u([dD][89abAB]{_HEX}{{2}})(?!\\u[dD][c-fC-F]{_HEX}{{2}})"
    rf"|(?<!\\)((?:\\\\)*)(?<!\\u[dD][89abAB]{_HEX}{{2}})\\u([dD][c-fC-F]{_HEX}{{2}})"
)


class JSONProblem(ValueError):
    """A text that is not an acceptable JSON object; the message is the quarantine reason."""


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
