"""The leak check's prefilter (transforms.checks.may_name_masked_field): it never drops an event whose
detail holds a change of a masked field, whatever the field's case, escapes or script; it drops only
texts that cannot hold one."""

import json

import polars as pl
from hypothesis import given, settings, strategies as st

from transforms.changes import CHANGE_KEYS, MaskRules, explode_changes
from transforms.checks import may_name_masked_field

RULES = MaskRules(entries=("password", "Integration.config", "clé", "token"))
NAMES = ["password", "PassWord", "PASSWORD", "config", "CONFIG", "clé", "CLÉ", "token", "ToKeN", "name", "active",
         "pass", "tokens", "x"]
field_names = st.one_of(st.sampled_from(NAMES), st.text(max_size=12))
values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                      max_leaves=6)
changes = st.lists(st.fixed_dictionaries({"field": field_names, "before": values, "after": values},
                                         optional={"type": st.sampled_from(["Integration", "FeatureFlag"])}),
                   max_size=4)


def _events(details: list[tuple[str, bool]]) -> pl.DataFrame:
    row = {key: None for key in CHANGE_KEYS}
    rows = [{**row, "id": str(i), "scope": "Integration", "detail": text} for i, (text, _) in enumerate(details)]
    return pl.DataFrame(rows, schema={**{k: pl.String for k in CHANGE_KEYS}, "detail": pl.String})


def _flagged(events: pl.DataFrame) -> set[str]:
    exploded, _ = explode_changes(events, MaskRules(entries=()))
    return set(exploded.filter(RULES.expression())["id"].to_list())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(changes, st.booleans()), min_size=1, max_size=8))
def test_never_drops_a_detail_with_a_masked_field(details):
    texts = [(json.dumps({"changes": c}, ensure_ascii=ascii_only), ascii_only) for c, ascii_only in details]
    events = _events(texts)
    kept = set(events.filter(may_name_masked_field(RULES))["id"].to_list())
    assert _flagged(events) <= kept


def test_drops_plain_texts_without_a_masked_name_and_keeps_the_undecidable():
    texts = ['{"changes":[{"field":"name","before":"a","after":"b"}]}',         # dropped
             '{"changes":[{"field":"Password","before":"a","after":"b"}]}',     # kept: the name, any case
             '{"changes":[{"field":"pass\\u0077ord","before":"a","after":"b"}]}',  # kept: an escape
             '{"changes":[{"field":"clé","before":"a","after":"b"}]}']          # kept: not ASCII
    events = _events([(t, True) for t in texts])
    assert events.filter(may_name_masked_field(RULES))["id"].to_list() == ["1", "2", "3"]
    assert _flagged(events) == {"1", "2", "3"}
    assert events.filter(may_name_masked_field(MaskRules(entries=()))).height == 0
