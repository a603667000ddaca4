"""Property: the key columns of a mix of fast, lenient and unreadable lines equal those of each line alone."""

import json

import polars as pl
from hypothesis import given, settings as hsettings, strategies as st
from polars.testing import assert_frame_equal

from transforms.validate import parse_keys

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.text(max_size=8),
    st.just({}), st.just({"a": [1, "x"]}), st.just([1]), st.floats(allow_nan=False, allow_infinity=False),
)
FIELDS = ["id", "activity", "scope", "item_id", "created_at", "user", "detail", "is_system",
          "was_impersonated", "team_id", "organization_id", "other"]
EVENTS = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=len(FIELDS)).map(json.dumps)
LINES = st.lists(st.one_of(EVENTS, EVENTS, st.sampled_from(["[1]", "{", "NaN", '{"id": "\\ud800"}', '"x"'])),
                 min_size=1, max_size=30)


@hsettings(max_examples=150, deadline=None)
@given(LINES)
def test_lines_together_equal_lines_alone(texts):
    lines = pl.DataFrame({"line": list(range(1, len(texts) + 1)), "text": texts}, schema={"line": pl.Int64, "text": pl.String})
    together, rejected_together = parse_keys(lines)
    alone = [parse_keys(lines.slice(i, 1)) for i in range(len(texts))]
    assert_frame_equal(together, pl.concat([a[0] for a in alone]))
    assert_frame_equal(rejected_together, pl.concat([a[1] for a in alone]))
