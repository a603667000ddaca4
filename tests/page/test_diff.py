"""Differences as the activity log page shows them (pipelines/web/diff.py), properties on arbitrary values: a
text diff rebuilds both sides, an object diff names exactly the keys that differ, a list diff turns one side
into the other, any two values have a diff."""

from hypothesis import given, settings, strategies as st


# ------------------------------------------------------------------------------------------------
# Differences (pipelines/web/diff.py) on arbitrary values


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
                    max_leaves=20)


@settings(max_examples=100, deadline=None)
@given(before=st.text(max_size=60), after=st.text(max_size=60))
def test_property_text_diff_rebuilds_both_sides(before, after):
    from pipelines.web.diff import describe

    found = describe(before, after)
    if "masked" in (before, after):
        assert found.kind == "masked"
        return
    assert found.kind == "text"
    assert "".join(p.text for p in found.pieces if p.op != "added") == before
    assert "".join(p.text for p in found.pieces if p.op != "removed") == after


@settings(max_examples=100, deadline=None)
@given(before=st.dictionaries(st.text(max_size=6), JSON, max_size=6),
       after=st.dictionaries(st.text(max_size=6), JSON, max_size=6))
def test_property_object_diff_names_exactly_the_keys_that_differ(before, after):
    import json as json_module

    from pipelines.web.diff import describe

    found = describe(before, after)
    assert found.kind == "object"
    ops = {name: op for name, op, _ in found.entries}
    assert {n for n, op in ops.items() if op == "added"} == set(after) - set(before)
    assert {n for n, op in ops.items() if op == "removed"} == set(before) - set(after)
    same = lambda a, b: json_module.dumps(a, sort_keys=True) == json_module.dumps(b, sort_keys=True)  # noqa: E731
    assert {n for n, op in ops.items() if op == "changed"} == {
        n for n in set(before) & set(after) if not same(before[n], after[n])}


@settings(max_examples=100, deadline=None)
@given(before=st.lists(JSON, max_size=8), after=st.lists(JSON, max_size=8))
def test_property_list_diff_turns_before_into_after(before, after):
    from collections import Counter

    from pipelines.web.diff import describe, show

    found = describe(before, after)
    assert found.kind == "list"
    kept = Counter(show(v) for v in before) - Counter(found.removed)
    assert kept + Counter(found.added) == Counter(show(v) for v in after)


@settings(max_examples=100, deadline=None)
@given(before=JSON, after=JSON)
def test_property_any_values_have_a_diff(before, after):
    from pipelines.web.diff import describe

    assert describe(before, after).kind in ("text", "object", "list", "value", "masked")
    assert describe(before, after, masked=True).kind == "masked"
