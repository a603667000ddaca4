"""RFC 8785 canonical JSON for event leaves: the RFC's own examples, values it cannot represent refused, and
the fast paths (msgspec, the vectorized judgement on the text, ECMAScript numbers) agreeing with the
reference implementation on arbitrary JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from transforms.commitments import CommitmentError, canonical


# ------------------------------------------------------------------------------- RFC 8785 examples


def test_rfc8785_main_example():
    # RFC 8785 §3.2.2 / §3.2.3: input and its canonical form.
    text = ('{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
            ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
            ' "literals": [null, true, false]}')
    expected = ('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
                '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}')
    assert canonical(json.loads(text)) == expected.encode()


def test_rfc8785_property_sorting():
    # RFC 8785 §3.2.3: keys sorted by their UTF-16 code units.
    doc = json.loads('{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh",'
                     ' "1": "One", "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control",'
                     ' "\\u00f6": "Latin Small Letter O With Diaeresis"}')
    keys = list(json.loads(canonical(doc)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001F600", "\ufb33"]


@pytest.mark.parametrize("value,text", [
    (0.0, "0"), (-0.0, "0"), (1e21, "1e+21"), (1e20, "100000000000000000000"), (5e-324, "5e-324"),
    (1.7976931348623157e308, "1.7976931348623157e+308"), (9007199254740992.0, "9007199254740992"),
    (0.000001, "0.000001"), (1e-7, "1e-7"), (295147905179352830000.0, "295147905179352830000"),
    (-1.5, "-1.5"), (333333333.3333333, "333333333.3333333"),
])
def test_rfc8785_numbers(value, text):
    # RFC 8785 Appendix B (ECMAScript number serialization).
    assert canonical(value) == text.encode()


def test_values_jcs_cannot_represent_are_refused():
    with pytest.raises(CommitmentError):
        canonical(float("nan"))
    with pytest.raises(CommitmentError):
        canonical(2 ** 64)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 53) + 1, 2 ** 53 - 1) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_the_fast_encoder_agrees_with_rfc8785(value):
    import rfc8785

    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:  # lone surrogates: refused either way
        with pytest.raises(CommitmentError):
            canonical(value)
        return
    assert canonical(value) == expected


# ----------------------------------------------------------------------------------------- fast paths


_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-(2 ** 53) + 1, 2 ** 53 - 1)
                    | st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",))),
                    lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",))),
                                      children, max_size=4),
                    max_leaves=25))
def test_the_msgspec_fast_path_equals_rfc8785_on_plain_json(value):
    """Integers within ±2^53, no surrogates, nothing outside the Basic Multilingual Plane: the fast
    encoder's bytes are RFC 8785's."""
    import rfc8785

    from transforms.commitments import fast_canonical

    assert fast_canonical(value) == rfc8785.dumps(value)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _ANY_JSON, max_size=5),
       st.sampled_from([{}, {"indent": 1}, {"ensure_ascii": False}, {"separators": (",", ":")}]))
def test_a_text_judged_plain_takes_the_fast_path_safely(document, options):
    """The vectorized judgement on the text never sends the fast way a value whose fast bytes differ
    from RFC 8785's (a float, a large integer, a surrogate or an astral character goes the exact way)."""
    import polars as pl
    import rfc8785

    from transforms.commitments import fast_canonical, plain_texts

    text = json.dumps(document, **options)
    if plain_texts(pl.Series([text]))[0]:
        assert fast_canonical(json.loads(text)) == rfc8785.dumps(json.loads(text)), text


def test_plain_texts_on_the_usual_suspects():
    import polars as pl

    from transforms.commitments import plain_texts

    texts = ['{"a":1}', '{"a":1.5}', '{"a": [1e5]}', '{"a":12345678901234567}', '{"a":NaN}', '{"a":-Infinity}',
             '{"a":"\\ud83d\\ude00"}', '{"\U0001F600":1}', '{"t":"2024-01-01T00:00:00.123Z","n":-3}']
    assert plain_texts(pl.Series(texts)).to_list() == [True, False, False, False, False, False, False, False, True]


@settings(max_examples=2000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_es_number_writes_every_double_as_rfc8785_does(value):
    import rfc8785

    from transforms.commitments import es_number

    assert es_number(value).encode() == rfc8785.dumps(value)


@settings(max_examples=400, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-(2 ** 53) + 1, 2 ** 53 - 1)
                    | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",))),
                    lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",))),
                                      children, max_size=4),
                    max_leaves=25))
def test_numbers_written_as_ecmascript_make_the_fast_path_rfc8785_with_floats(value):
    """Floats in any place: the sorted encoding of :func:`jcs_numbers`'s result is RFC 8785's."""
    import rfc8785

    from transforms.commitments import fast_canonical, jcs_numbers

    assert fast_canonical(jcs_numbers(value)) == rfc8785.dumps(value)


def test_numbers_jcs_cannot_represent_leave_the_fast_path():
    from transforms.commitments import _NotRepresentable, jcs_numbers, number_only_texts

    import polars as pl

    for value in ({"a": 2 ** 53}, [float("inf")], {"b": [-(2 ** 60)]}):
        with pytest.raises(_NotRepresentable):
            jcs_numbers(value)
    texts = ['{"a":1.5}', '{"a":1e999}', '{"a":"\\ud83d\\ude00", "b": 1.5}', '{"\U0001F600":1}', '{"a":1}']
    assert number_only_texts(pl.Series(texts)).to_list() == [True, True, False, False, True]
