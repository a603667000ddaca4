"""The page's list differences (pipelines/web/diff.py) as multisets: whatever two lists of JSON values,
``removed`` is what ``before`` has more of than ``after`` and ``added`` the reverse, each item as the
page shows it, in the order of its own list."""

from __future__ import annotations

import json
from collections import Counter

from hypothesis import given, strategies as st

from pipelines.web.diff import describe, show

values = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["a", "b", "é"]),
                      lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from("xy"), inner,
                                                                                    max_size=2), max_leaves=4)


def _expected(side: list, other: list) -> list[str]:
    left = Counter(json.dumps(v, sort_keys=True) for v in other)
    out = []
    for value in side:
        key = json.dumps(value, sort_keys=True)
        if left[key]:
            left[key] -= 1
        else:
            out.append(show(value))
    return out


@given(st.lists(values, max_size=8), st.lists(values, max_size=8))
def test_list_differences_are_multiset_differences(before, after):
    diff = describe(before, after)
    assert diff.kind == "list"
    assert list(diff.removed) == _expected(before, after)
    assert list(diff.added) == _expected(after, before)
    if Counter(json.dumps(v, sort_keys=True) for v in before) == Counter(json.dumps(v, sort_keys=True) for v in after):
        assert not diff.added and not diff.removed  # a reordering is no change
