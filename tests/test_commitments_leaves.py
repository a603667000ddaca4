"""Event leaves: salted commitments to personal fields, verification before and after erasure, disclosed
values, the salts table, leaves built in bulk agreeing with one at a time, fresh salts never reused."""

from __future__ import annotations

import copy
import json
import os
from datetime import date

import pytest
from hypothesis import given, settings, strategies as st

from tests.helpers.events import make_event
from transforms.commitments import (
    SALT_SIZE, CommitmentError, Leaf, build_leaf, delete_salts, personal_paths, read_salts,
    salts_frame, verify_erased_event, verify_event, verify_field, write_salts,
)
from transforms.lake import Lake


# ----------------------------------------------------------------------------------------------- leaves


def _event(**overrides):
    event = make_event(**overrides)
    event["detail"]["changes"].append(
        {"type": "OrganizationMembership", "action": "changed", "field": "email",
         "before": "old.address@example.org", "after": "jane@example.com"})
    event["detail"]["name"] = "flag owned by user-uuid-42"
    return event


def _erase(event: dict) -> dict:
    """What erasure does to the actor's event: pseudonymous user, no IP, emails replaced."""
    out = copy.deepcopy(event)
    out["user"] = {"uuid": "pseudonym-1", "first_name": "Erased user"}
    out["ip_address"] = None
    for change in out["detail"]["changes"]:
        for side in ("before", "after"):
            if isinstance(change.get(side), str) and "@" in change[side]:
                change[side] = "pseudonym-1@erased.invalid"
    out["detail"]["name"] = "erased"
    return out


def test_personal_paths_cover_the_actor_and_their_mentions():
    assert personal_paths(_event()) == [
        "/detail/changes/1/after", "/detail/changes/1/before", "/detail/name", "/ip_address",
        "/user/email", "/user/first_name", "/user/id", "/user/last_name", "/user/uuid"]
    assert personal_paths(make_event(user=None, ip_address=None)) == []


def test_a_leaf_verifies_with_its_salts_and_holds_no_personal_data():
    event = _event()
    leaf, salts = build_leaf(event)
    assert set(salts) == set(personal_paths(event))
    assert all(len(s) == SALT_SIZE for s in salts.values())
    assert len(set(salts.values())) == len(salts)  # a fresh salt per field
    verify_event(event, leaf, salts)
    for value in ("jane", "Jane", "Doe", "user-uuid-42", "203.0.113.7", "old.address", "example"):
        assert value.encode() not in leaf
    # The same event again: fresh salts, a different leaf.
    again, other_salts = build_leaf(event)
    assert again != leaf and set(other_salts.values()).isdisjoint(salts.values())
    verify_event(event, again, other_salts)
    # Given salts reproduce the leaf exactly.
    assert build_leaf(event, salts=salts)[0] == leaf


@pytest.mark.parametrize("path,value", [
    ("user.email", "john@example.com"), ("user.first_name", "Jan"), ("ip_address", "203.0.113.8"),
    ("activity", "deleted"), ("item_id", "12346"), ("team_id", 2), ("created_at", "2024-01-15T10:30:00.000001Z"),
])
def test_any_changed_field_fails(path, value):
    event = _event()
    leaf, salts = build_leaf(event)
    changed = copy.deepcopy(event)
    node = changed
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    with pytest.raises(CommitmentError):
        verify_event(changed, leaf, salts)


def test_changed_detail_and_added_or_removed_members_fail():
    event = _event()
    leaf, salts = build_leaf(event)
    for change in (lambda e: e["detail"]["changes"][0].update(after=False),
                   lambda e: e["detail"]["changes"][1].update(after="other@example.com"),
                   lambda e: e.update(extra=1),
                   lambda e: e.pop("client"),
                   lambda e: e["user"].update(email=None)):
        changed = copy.deepcopy(event)
        change(changed)
        with pytest.raises(CommitmentError):
            verify_event(changed, leaf, salts)


def test_wrong_or_missing_salts_fail():
    event = _event()
    leaf, salts = build_leaf(event)
    wrong = dict(salts, **{"/user/email": bytes(32)})
    with pytest.raises(CommitmentError, match="/user/email"):
        verify_event(event, leaf, wrong)
    with pytest.raises(CommitmentError):
        verify_event(event, leaf, {k: v for k, v in salts.items() if k != "/ip_address"})


def test_an_erased_event_still_matches_its_leaf():
    event = _event()
    leaf, salts = build_leaf(event)
    erased = _erase(event)
    verify_erased_event(erased, leaf)
    verify_erased_event(event, leaf)  # the original too: the rest is the same
    with pytest.raises(CommitmentError):
        verify_event(erased, leaf, salts)
    # Personal fields removed outright (not only replaced) match as well.
    removed = copy.deepcopy(erased)
    del removed["user"]
    del removed["ip_address"]
    verify_erased_event(removed, leaf)
    # A change to what erasure keeps fails.
    tampered = copy.deepcopy(erased)
    tampered["activity"] = "deleted"
    with pytest.raises(CommitmentError):
        verify_erased_event(tampered, leaf)
    tampered = copy.deepcopy(erased)
    del tampered["detail"]["changes"][1]
    with pytest.raises(CommitmentError):
        verify_erased_event(tampered, leaf)


def test_a_disclosed_value_opens_its_commitment():
    event = _event()
    leaf, salts = build_leaf(event)
    verify_field("/user/email", "jane@example.com", salts["/user/email"], leaf)
    with pytest.raises(CommitmentError):
        verify_field("/user/email", "Jane@example.com", salts["/user/email"], leaf)
    with pytest.raises(CommitmentError):
        verify_field("/user/phone", "x", salts["/user/email"], leaf)


def test_leaf_bytes_are_canonical_and_checked():
    leaf, _ = build_leaf(_event())
    parsed = Leaf.from_bytes(leaf)
    assert parsed.to_bytes() == leaf
    with pytest.raises(CommitmentError):
        Leaf.from_bytes(json.dumps(json.loads(leaf), indent=1).encode())
    with pytest.raises(CommitmentError):
        Leaf.from_bytes(b"not json")
    with pytest.raises(CommitmentError):
        build_leaf(["not", "an", "object"])


@settings(max_examples=60, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-(2 ** 53) + 1, 2 ** 53 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
                    max_leaves=10))
def test_any_detail_round_trips(detail):
    event = make_event(detail=detail)
    leaf, salts = build_leaf(event)
    verify_event(json.loads(json.dumps(event)), leaf, salts)


# ------------------------------------------------------------------------------------------------ salts

def test_salts_table_round_trip_and_erasure(tmp_path):
    lake = Lake.at(tmp_path)
    a, b = _event(id="evt-a"), _event(id="evt-b")
    leaf_a, salts_a = build_leaf(a)
    leaf_b, salts_b = build_leaf(b)
    write_salts(lake, salts_frame([("evt-a", date(2024, 1, 15), salts_a), ("evt-b", date(2024, 1, 15), salts_b)]))
    assert read_salts(lake, "evt-a") == salts_a
    assert read_salts(lake, "evt-b", date(2024, 1, 15)) == salts_b
    verify_event(a, leaf_a, read_salts(lake, "evt-a"))
    delete_salts(lake, ["evt-a"])
    assert read_salts(lake, "evt-a") == {}
    assert read_salts(lake, "evt-b") == salts_b
    verify_erased_event(_erase(a), leaf_a)
    assert read_salts(Lake.at(tmp_path / "none"), "evt-a") == {}


def test_the_event_is_left_as_it_was():
    event = _event()
    before = json.dumps(event, sort_keys=True)
    build_leaf(event)
    verify_erased_event(_erase(event), build_leaf(event)[0])
    assert json.dumps(event, sort_keys=True) == before


# ------------------------------------------------------------------------------------- leaves in bulk

_EVENT_VALUES = st.one_of(
    st.none() | st.booleans() | st.integers(-(2 ** 53) + 1, 2 ** 53 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(), st.emails(), st.sampled_from(["jane@example.com", "Jane", "Doe", "user-uuid-42", "203.0.113.7",
                                              "ping 203.0.113.7", "JANE@EXAMPLE.COM", "caf\u00e9", "\U0001F600"]))


@settings(max_examples=300, deadline=None)
@given(st.recursive(_EVENT_VALUES, lambda children: st.lists(children, max_size=3)
                    | st.dictionaries(st.text(max_size=5), children, max_size=3), max_leaves=12),
       st.sampled_from([{}, {"user": None}, {"ip_address": None}, {"user": {"id": 7, "email": None}},
                        {"user": {"first_name": 5, "uuid": "U-1"}}]),
       st.booleans())
def test_build_leaves_gives_build_leaf_s_bytes(detail, overrides, drop_detail):
    """Same salts, same leaf: the bulk path and the reference path agree on arbitrary events."""
    from transforms.commitments import build_leaves

    event = make_event(detail=detail, **overrides)
    if drop_detail:
        del event["detail"]
    text = json.dumps(event, ensure_ascii=False)
    parsed = json.loads(text)
    leaves, salts = build_leaves([text])
    assert set(salts[0]) == set(personal_paths(parsed))
    assert leaves[0] == build_leaf(parsed, salts=salts[0])[0]
    verify_event(parsed, leaves[0], salts[0])


def test_build_leaves_reuses_given_salts_and_refuses_what_is_not_an_event():
    from transforms.commitments import build_leaves

    text = json.dumps(_event())
    first, salts = build_leaves([text])
    again, same = build_leaves([text], salts=salts)
    assert again == first and same == salts
    fresh, other = build_leaves([text])
    assert fresh != first and set(other[0].values()).isdisjoint(salts[0].values())
    with pytest.raises(CommitmentError, match="an event is a JSON object"):
        build_leaves(["[1, 2]"])
    with pytest.raises(CommitmentError, match="is not JSON"):
        build_leaves(["{nope"])
    with pytest.raises(CommitmentError, match="one salt mapping"):
        build_leaves([text], salts=[])


def test_an_event_jcs_cannot_represent_gets_a_leaf_of_its_exact_text():
    import hashlib

    from transforms.commitments import build_leaves

    text = json.dumps(_event(team_id=2 ** 60))
    leaves, salts = build_leaves([text])
    assert salts == [{}]
    assert Leaf.from_bytes(leaves[0]) == Leaf({}, hashlib.sha256(text.encode()).digest())
    assert build_leaves([text.replace("jane@", "john@")])[0] != leaves


def test_salts_cut_from_large_reads_are_never_reused():
    from transforms.commitments import SALT_SIZE, _SaltSource

    reads = []

    def urandom(size):
        reads.append(size)
        return os.urandom(size)

    source = _SaltSource(urandom)
    salts = [source.take(SALT_SIZE) for _ in range(10_000)]
    assert len(set(salts)) == len(salts) and all(len(s) == SALT_SIZE for s in salts)
    assert len(reads) == -(-10_000 * SALT_SIZE // _SaltSource.CHUNK)  # one read per 64 KiB of salt
