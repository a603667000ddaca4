"""The publisher API, served for real: limits, malformed bodies and invalid events are each answered
with the reason, nothing of a refused request is written, an atomic batch accepts nothing when one
event is rejected, numbers and strings RFC 8785 cannot represent are refused by index; arbitrary JSON
and fuzzed requests (schemathesis) never get a server error. Keys publishing into another tenant:
tests/publish/test_ingest.py."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers.events import make_event
from tests.helpers.publish import (MAX_BYTES, MAX_EVENTS, auth_headers, batch_with_invalid, expected_sha256,
                                   ids_in_spool, post, spooled, spooled_lines)


pytestmark = pytest.mark.local_lake


# ------------------------------------------------------------------------------------------------
# Limits and malformed requests: each answered with its reason, nothing written


def test_a_body_larger_than_the_limit_is_413_naming_it(world):
    before = len(spooled(world))
    event = make_event(id="big-1", created_at="2024-03-12T10:00:00Z", detail={"blob": "x" * (MAX_BYTES + 1)})
    response = post(world, "/api/projects/1/activity_log/events", "w1", event)
    assert response.status_code == 413
    assert response.json() == {"type": "validation_error", "attr": "max_bytes",
                               "detail": "request body is larger than publish.max_bytes (512 KiB)"}

    def chunks():  # no Content-Length: the limit holds while the body streams in
        data = json.dumps(event).encode()
        for start in range(0, len(data), 65536):
            yield data[start:start + 65536]

    response = httpx.post(world["url"] + "/api/projects/1/activity_log/events", content=chunks(), timeout=60,
                          headers=auth_headers(world, "w1"))
    assert response.status_code == 413
    assert response.json()["detail"] == "request body is larger than publish.max_bytes (512 KiB)"
    assert len(spooled(world)) == before


def test_an_event_longer_than_the_ingest_line_limit_is_rejected_by_index(world):
    long = make_event(id="long-1", created_at="2024-03-12T10:00:00Z", detail={"blob": "x" * 70_000})
    short = make_event(id="long-2", created_at="2024-03-12T10:00:00Z")
    response = post(world, "/api/projects/1/activity_log/events", "w1", {"events": [long, short]})
    assert response.status_code == 202
    first, second = response.json()["results"]
    assert first["status"] == "rejected"
    assert first["reason"].startswith("line is longer than ACTIVITYLOG_MAX_LINE_BYTES (64 KiB): ")
    assert second["status"] == "accepted"
    assert ids_in_spool(world, "long-") == ["long-2"]


def test_too_many_events_is_413_naming_the_limit(world):
    events = [make_event(id=f"many-{i}", created_at="2024-03-12T10:00:00Z") for i in range(MAX_EVENTS + 1)]
    response = post(world, "/api/projects/1/activity_log/events", "w1", {"events": events})
    assert response.status_code == 413
    assert response.json()["detail"] == f"{MAX_EVENTS + 1} events is more than publish.max_events ({MAX_EVENTS})"
    assert post(world, "/api/projects/1/activity_log/events", "w1", {"events": events[:MAX_EVENTS]}).status_code == 202


@pytest.mark.parametrize("content,detail", [
    (b'{"events": [', "malformed JSON at line 1 column 13: Expecting value"),
    (b"{'id': 1}", "malformed JSON at line 1 column 2: Expecting property name enclosed in double quotes"),
    (b"", "malformed JSON at line 1 column 1: Expecting value"),
    (b"\xff\xfe{}", "request body is not UTF-8 (byte 1)"),
    (b"[" * 100_000, "malformed JSON: nested too deeply"),
    (b"[{}]", 'the body must be one event (a JSON object) or a batch {"events": [...]}, not an array'),
    (b'"text"', 'the body must be one event (a JSON object) or a batch {"events": [...]}, not a JSON str'),
    (b'{"events": {"id": "x"}}', "events must be an array of event objects"),
    (b'{"events": []}', "events is empty: send at least one event"),
])
def test_malformed_bodies_are_400_with_the_reason(world, content, detail):
    response = post(world, "/api/projects/1/activity_log/events", "w1", content=content)
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == detail


def test_atomic_batches_accept_nothing_when_one_event_is_rejected(world):
    events, invalid = batch_with_invalid("atomic", 10)  # index 7 is invalid
    before = len(spooled(world))
    response = post(world, "/api/projects/1/activity_log/events", "w1", {"events": events}, params={"atomic": "true"})
    assert response.status_code == 422
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (0, 10)
    assert body["results"][7] == {"index": 7, "status": "rejected", "reason": "missing required field: activity"}
    assert all(r["reason"] == "not accepted: the batch is atomic and event 7 was rejected"
               for r in body["results"] if r["index"] != 7)
    assert len(spooled(world)) == before
    del events[7]
    response = post(world, "/api/projects/1/activity_log/events", "w1", {"events": events}, params={"atomic": "true"})
    assert response.status_code == 202 and response.json()["accepted"] == 9


def test_a_batch_with_only_invalid_events_is_422(world):
    response = post(world, "/api/projects/1/activity_log/events", "w1", {"events": [{"id": "x"}, 3, None]})
    assert response.status_code == 422
    assert response.json()["results"] == [
        {"index": 0, "status": "rejected", "reason": "missing required field: activity"},
        {"index": 1, "status": "rejected", "reason": "not a JSON object (found a number)"},
        {"index": 2, "status": "rejected", "reason": "not a JSON object (found null)"},
    ]


def test_numbers_rfc8785_cannot_represent_are_rejected_with_the_reason(world):
    text = json.dumps(make_event(id="bigint-1", created_at="2024-03-12T10:00:00Z", detail={"n": 0}))
    big = text.replace('"n": 0', '"n": 12345678901234567890123')
    huge = text.replace('"n": 0', '"n": 1e999').replace("bigint-1", "bigint-2")
    exact = text.replace('"n": 0', '"n": 9007199254740991').replace("bigint-1", "bigint-3")
    content = f'{{"events": [{big}, {huge}, {exact}]}}'.encode()
    response = post(world, "/api/projects/1/activity_log/events", "w1", content=content)
    assert response.status_code == 202, response.text
    results = response.json()["results"]
    assert results[0]["status"] == results[1]["status"] == "rejected"
    hint = ("values RFC 8785 cannot represent exactly (integers beyond ±2^53, numbers beyond a double's range, "
            "unpaired surrogates) are not accepted over HTTP; send them as strings")
    assert results[0]["reason"] == ("not canonicalizable as JSON (RFC 8785): 12345678901234567890123 exceeds "
                                    "safe integer domain for JSON floats: " + hint), results[0]
    assert results[1]["reason"].endswith(hint) and "inf" in results[1]["reason"].lower(), results[1]
    assert results[2]["status"] == "accepted"
    stored = next(line for line in spooled_lines(world) if '"bigint-3"' in line)
    assert '"n": 9007199254740991' in stored  # every other member keeps its exact text


def test_an_unpaired_surrogate_in_a_value_is_rejected_with_the_reason(world):
    text = json.dumps(make_event(id="surrogate-1", created_at="2024-03-12T10:00:00Z", detail={"name": "x"}))
    content = text.replace('"name": "x"', '"name": "cut \\ud83d"').encode()
    assert b"\\ud83d" in content
    response = post(world, "/api/projects/1/activity_log/events", "w1", content=content)
    assert response.status_code == 422
    [result] = response.json()["results"]
    assert result["reason"].startswith("not canonicalizable as JSON (RFC 8785): input contains non-UTF-8 codepoints")
    content = text.replace('"surrogate-1"', '"\\ud83d"').encode()  # in a key field: the ingest's own reason
    [result] = post(world, "/api/projects/1/activity_log/events", "w1", content=content).json()["results"]
    assert result["reason"] == "id holds an unpaired UTF-16 surrogate (not text)"


# ------------------------------------------------------------------------------------------------
# Arbitrary JSON: never a 500, every index accounted for


def test_arbitrary_json_fields_never_500_and_every_index_is_answered(world):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    leaves = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12)
    values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                                              inner, max_size=3),
                          max_leaves=8)
    names = st.sampled_from(["id", "activity", "scope", "created_at", "item_id", "user", "detail", "is_system",
                             "was_impersonated", "team_id", "organization_id", "extra"])
    events = st.lists(st.dictionaries(names, values, max_size=8) | values, min_size=1, max_size=6)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(events=events, base=st.booleans())
    def check(events, base):
        if base:  # mostly valid events with arbitrary fields mixed in
            events = [{**make_event(id=f"h-{i}-{hash(json.dumps(e, sort_keys=True, default=str))}",
                                    created_at="2024-03-12T10:00:00Z"), **e} if isinstance(e, dict) else e
                      for i, e in enumerate(events)]
        content = json.dumps({"events": events}).encode()
        response = post(world, "/api/projects/2/activity_log/events", "w2", content=content)
        assert response.status_code in (202, 422), response.text
        body = response.json()
        assert [r["index"] for r in body["results"]] == list(range(len(events)))
        assert body["accepted"] + body["rejected"] == len(events)
        assert (response.status_code == 202) == (body["accepted"] > 0)
        for result in body["results"]:
            if result["status"] == "accepted":
                event = json.loads(json.dumps(events[result["index"]]))
                assert result["sha256"] == expected_sha256(event, 2, "org-a")
            else:
                assert result["status"] == "rejected" and result["reason"]

    check()


def test_fuzzed_publish_requests_never_get_a_server_error(world):
    """schemathesis generates requests for the publish operations of the OpenAPI document (bodies,
    paths, atomic, Idempotency-Key, valid and invalid): none may answer 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(world["url"] + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [o for o in operations if o.path.endswith("/activity_log/events")]
    assert len(operations) == 2
    failures, statuses = [], set()
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):  # paths the key may publish to (other paths: the tenant tests above)
            if "project_id" in case.path_parameters:
                case.path_parameters["project_id"], key = 1, "w1"
            else:
                case.path_parameters["org_id"], key = "org-a", "admin-w"
            response = case.call(headers=auth_headers(world, key), timeout=60)
            statuses.add(response.status_code)
            if response.status_code >= 500:
                failures.append((case.method, case.formatted_path, case.query, response.text[:200]))

        check()
    assert failures == []
    assert statuses & {202, 422}  # some requests reached the validation
