"""Hypothesis strategies that write JSON text the way real producers may and a JSON encoder in this process
never would: ``json_string`` (any character raw or escaped, unpaired surrogates among them) and ``json_value``
(numbers of any size or precision, nesting, duplicate keys)."""

from __future__ import annotations

from hypothesis import strategies as st

SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def _u(code: int, upper: bool) -> str:
    return f"\\u{code:04X}" if upper else f"\\u{code:04x}"


@st.composite
def json_string(draw) -> str:
    """A JSON string literal: each character raw or escaped (any way JSON allows), unpaired surrogates
    among them."""
    pieces = ['"']
    chars = draw(st.lists(st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(
        ["\ud800", "\udfff", "\udbff", "\u2028", "\u2029", "\x00", "\\", '"', "\t", "\x7f", "😀"])), max_size=12))
    for char in chars:
        code, upper, escape = ord(char), draw(st.booleans()), draw(st.integers(0, 3)) == 0
        if 0xD800 <= code <= 0xDFFF:  # an unpaired surrogate can only be written as an escape
            pieces.append(_u(code, upper))
        elif char in SHORT_ESCAPES and (code < 0x20 or char in '"\\' or escape):
            pieces.append(SHORT_ESCAPES[char] if draw(st.booleans()) else _u(code, upper))
        elif code < 0x20 or escape:
            if code > 0xFFFF:
                pieces.append(_u(0xD800 + ((code - 0x10000) >> 10), upper) + _u(0xDC00 + ((code - 0x10000) & 0x3FF), upper))
            else:
                pieces.append(_u(code, upper))
        else:
            pieces.append(char)
    pieces.append('"')
    return "".join(pieces)


json_number = st.one_of(
    st.integers().map(str),
    st.integers(min_value=10**19, max_value=10**40).map(lambda n: str(-n if n % 2 else n)),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.builds(lambda m, f, e: f"{m}.{f}e{e}", st.integers(-99, 99), st.integers(0, 10**6),
              st.integers(-999, 999)),
    st.sampled_from(["-0", "1.50", "1E400", "-1e-400", "0.1", "100000000000000000000000.5"]),
)
json_scalar = st.one_of(json_string(), json_number, st.sampled_from(["true", "false", "null"]))


def _array(items):
    return st.lists(items, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]")


def _object(items):
    return st.lists(st.tuples(json_string(), items), max_size=4).map(
        lambda kvs: "{" + ",".join(f"{k}:{v}" for k, v in kvs) + "}")


json_value = st.recursive(json_scalar, lambda inner: st.one_of(_array(inner), _object(inner)), max_leaves=12)
