"""The publisher API's spool and Idempotency-Key: accepted events are written to the landing area whole,
one line each with their own text; a spool that cannot be written is a 503 the retry recovers from; a
key reused for another request or malformed is refused; the spool files and the idempotency store
directly; the ``publish`` section of the configuration file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.events import make_event
from tests.helpers.publish import ids_in_spool, post, spooled, spooled_lines
from transforms.landing import scan_landing
from transforms.spool import IdempotencyRecord, IdempotencyStore, write_spool


pytestmark = pytest.mark.local_lake


def test_bad_idempotency_keys_and_atomic_flags_are_400(world):
    event = make_event(id="idem-bad", created_at="2024-03-12T10:00:00Z")
    for key in ("x" * 256, "has space", "é"):
        response = post(world, "/api/projects/1/activity_log/events", "w1", event,
                        **{"Idempotency-Key": key.encode()})
        assert response.status_code == 400
        assert response.json() == {"type": "validation_error", "attr": "Idempotency-Key",
                                   "detail": "must be 1 to 255 visible ASCII characters"}
    assert post(world, "/api/projects/1/activity_log/events", "w1", event,
                **{"Idempotency-Key": "x" * 255}).status_code == 202
    response = post(world, "/api/projects/1/activity_log/events", "w1", event, params={"atomic": "maybe"})
    assert response.status_code == 400 and response.json()["attr"] == "atomic"


def test_a_spool_that_cannot_be_written_is_503_and_the_retry_succeeds(world):
    event = make_event(id="unwritable-1", created_at="2024-03-12T10:00:00Z")
    assert post(world, "/api/projects/1/activity_log/events", "w1", {"events": [make_event(
        id="unwritable-0", created_at="2024-03-12T10:00:00Z")]}).status_code == 202  # the staging area exists
    staging = world["landing"] / ".publish" / "staging"
    moved = staging.with_name("staging-away")
    staging.rename(moved)
    staging.write_text("not a directory")  # every write of a spool file now fails
    try:
        before = len(spooled(world))
        response = post(world, "/api/projects/1/activity_log/events", "w1", event, **{"Idempotency-Key": "unwritable"})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.json()["detail"].startswith("the request could not be completed durably: retry it")
        assert len(spooled(world)) == before
    finally:
        staging.unlink()
        moved.rename(staging)
    retry = post(world, "/api/projects/1/activity_log/events", "w1", event, **{"Idempotency-Key": "unwritable"})
    assert retry.status_code == 202 and "Idempotent-Replayed" not in retry.headers  # the failure was not remembered
    assert ids_in_spool(world, "unwritable-1") == ["unwritable-1"]


def test_an_idempotency_key_reused_for_another_request_is_422(world):
    one = make_event(id="reuse-1", created_at="2024-03-12T10:00:00Z")
    other = make_event(id="reuse-2", created_at="2024-03-12T10:00:00Z")
    assert post(world, "/api/projects/1/activity_log/events", "w1", one, **{"Idempotency-Key": "reuse"}).status_code == 202
    before = len(spooled(world))
    for key, path, body, params in [("w1", "/api/projects/1/activity_log/events", other, None),
                                    ("w1", "/api/projects/1/activity_log/events", one, {"atomic": "true"})]:
        response = post(world, path, key, body, params=params, **{"Idempotency-Key": "reuse"})
        assert response.status_code == 422
        assert response.json()["detail"] == ("this Idempotency-Key was used with another request (path, atomic or "
                                             "body) by this key; use a new key for a new request")
    assert len(spooled(world)) == before
    # Keys are per API key: another key's "reuse" is its own.
    response = post(world, "/api/projects/2/activity_log/events", "w2", other, **{"Idempotency-Key": "reuse"})
    assert response.status_code == 202 and response.json()["results"][0]["id"] == "reuse-2"


def test_pretty_printed_events_are_spooled_on_one_line_with_their_text(world):
    event = make_event(id="pretty-1", created_at="2024-03-12T10:00:00Z", detail={"a": [1.50, "x\ny"], "b": {}})
    content = json.dumps({"events": [event]}, indent=2).encode().replace(b"1.5", b"1.50")
    response = post(world, "/api/projects/1/activity_log/events", "w1", content=content)
    assert response.status_code == 202, response.text
    line = next(line for line in spooled_lines(world) if '"pretty-1"' in line)
    assert json.loads(line)["detail"] == {"a": [1.5, "x\ny"], "b": {}}
    assert "1.50" in line and "\\n" in line


# ------------------------------------------------------------------------------------------------
# The spool and the idempotency store, directly


def test_spool_files_appear_whole_and_records_expire(tmp_path):
    landing = tmp_path / "landing"
    uri = write_spool(str(landing), ['{"id":"a"}', '{"id":"b"}'])
    assert Path(uri).read_bytes() == b'{"id":"a"}\n{"id":"b"}\n'
    assert [f.uri for f in scan_landing(str(landing)).files] == [uri]  # the staging and record areas are hidden
    assert list((landing / ".publish" / "staging").iterdir()) == []
    with pytest.raises(ValueError, match="one line"):
        write_spool(str(landing), ['{"id":\n"a"}'])
    store = IdempotencyStore(str(landing), ttl_seconds=3600)
    record = IdempotencyRecord("digest", 202, b'{"accepted":1}', created_at=1000.0)
    store.put("key", "k", record)
    assert store.get("key", "k", now=1000.0 + 3599) == record
    assert store.get("key", "k", now=1000.0 + 3600) is None
    assert store.get("other-key", "k", now=1000.0) is None
    assert [f.uri for f in scan_landing(str(landing)).files] == [uri]
    assert store.sweep(now=1000.0 + 3599) == 0 and store.sweep(now=1000.0 + 3600) == 1
    assert store.get("key", "k", now=1000.0) is None


def test_the_publish_section_of_the_configuration_file(tmp_path):
    from pipelines.config import ConfigError, load_config

    path = tmp_path / "activitylog.yaml"
    path.write_text("publish:\n  max_events: 10\n  max_bytes: 1MiB\n  idempotency_ttl: 2d\n")
    section = load_config(path).publish
    assert (section.max_events, section.max_bytes, section.idempotency_seconds) == (10, 1024 * 1024, 172800.0)
    path.write_text("")
    section = load_config(path).publish
    assert (section.max_events, section.max_bytes, section.idempotency_seconds) == (1000, 5 * 1024 * 1024, 86400.0)
    for text, message in [
        ("publish: {max_events: 0}", "publish.max_events: must be a whole number of at least 1, not 0"),
        ("publish: {max_bytes: lots}", "publish.max_bytes: must be a size like 5MiB, 512KiB or 1000000, not 'lots'"),
        ("publish: {idempotency_ttl: 1mo}", "publish.idempotency_ttl: 1mo has no fixed length: use hours, days or weeks"),
        ("publish: {max_event: 3}", "publish.max_event: unknown key"),
    ]:
        path.write_text(text + "\n")
        with pytest.raises(ConfigError) as raised:
            load_config(path)
        assert message in str(raised.value)
