"""Notifications against a real HTTP server on 127.0.0.1: exactly once, signed, retried, disabled, resumable."""

import json
import time
from datetime import date, datetime, timezone

import polars as pl
import pytest
from standardwebhooks.webhooks import Webhook

from tests.helpers.events import make_event
from tests.helpers.notify import add_events, configure, flag_event, statuses
from destinations.delivery import RetryPolicy
from destinations.dispatch import notify_days, retry_failed, send_test
from destinations.webhook import signature_headers
from pipelines.config import ConfigError
from tests.helpers.receiver import Receiver
from transforms.filters import ActivityFilter
from transforms.lake import ACTIVITY_LOG
from transforms.notify import DELIVERIES, evaluate, ledger_state
from transforms.query import query

NOW = datetime(2024, 1, 16, 12, tzinfo=timezone.utc)
FAST = RetryPolicy(max_attempts=3, backoff_base=0.01)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


WEBHOOK = """\
notifications:
  max_event_age: 7d
  destinations:
    hook: {type: webhook, url: {env: HOOK_URL}, secret: {env: HOOK_SECRET}}
  subscriptions:
    - name: flags
      filter: {scopes: [FeatureFlag], detail_filters: {"changes[].field": {operation: in, value: [active]}}}
      destinations: [hook]
"""

SLACK = """\
notifications:
  destinations:
    ops: {type: slack, webhook_url: {env: SLACK_URL}, batch_size: 2, min_interval: %s,
          link_template: "http://posthog.local/project/{team_id}/feature_flags/{item_id}"}
  subscriptions:
    - {name: flags, filter: {scopes: [FeatureFlag]}, destinations: [ops]}
"""


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize("body, env, message", [
    (WEBHOOK, {"HOOK_SECRET": SECRET},
     "notifications.destinations.hook.webhook.url.env: environment variable HOOK_URL is not set"),
    (WEBHOOK.replace("{env: HOOK_URL}", '"http://127.0.0.1/hook"'), {"HOOK_SECRET": SECRET},
     "url: must be {env: NAME}, not a literal"),
    (WEBHOOK.replace("[hook]", "[nowhere]"), {"HOOK_URL": "http://x", "HOOK_SECRET": SECRET},
     "notifications: subscriptions[0] (flags): unknown destination 'nowhere' (destinations: hook)"),
    (WEBHOOK.replace("{scopes: [FeatureFlag],", "{scopes: [FeatureFlag], colour: red,"),
     {"HOOK_URL": "http://x", "HOOK_SECRET": SECRET}, "notifications.subscriptions[0].filter: unknown field 'colour'"),
    (WEBHOOK.replace("operation: in", "operation: like"), {"HOOK_URL": "http://x", "HOOK_SECRET": SECRET},
     "operation: 'like' is not one of exact, contains, in"),
    (WEBHOOK.replace("type: webhook", "type: pager"), {"HOOK_URL": "http://x", "HOOK_SECRET": SECRET},
     "notifications.destinations.hook: type 'pager' is not one of slack, webhook, email, file"),
    (WEBHOOK.replace("max_event_age: 7d", "max_event_age: 2mo"), {"HOOK_URL": "http://x", "HOOK_SECRET": SECRET},
     "notifications.max_event_age: 2mo has no fixed length"),
    (WEBHOOK + "    - {name: flags, destinations: [hook]}\n", {"HOOK_URL": "http://x", "HOOK_SECRET": SECRET},
     "'flags' is used twice"),
    (WEBHOOK + "      template: nowhere.j2\n", {"HOOK_URL": "http://x", "HOOK_SECRET": SECRET},
     "notifications.subscriptions[0].template: file nowhere.j2 does not exist"),
])
def test_configuration_errors_name_file_entry_and_field(tmp_path, monkeypatch, body, env, message):
    monkeypatch.delenv("HOOK_URL", raising=False)
    with pytest.raises(ConfigError) as info:
        configure(tmp_path, monkeypatch, body, **env)
    assert message in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "activitylog.yaml"))


def test_template_syntax_error_names_the_line(tmp_path, monkeypatch):
    (tmp_path / "bad.j2").write_text("line one\n{{ summary }\n")
    with pytest.raises(ConfigError, match=r"subscriptions\[0\]\.template: template .*bad\.j2: line 2: unexpected '}'"):
        configure(tmp_path, monkeypatch, WEBHOOK + "      template: bad.j2\n", HOOK_URL="http://x", HOOK_SECRET=SECRET)


# -- evaluation --------------------------------------------------------------------------------


def test_one_pass_evaluation_agrees_with_the_query_engine(lake, landing):
    add_events(lake, landing, [flag_event(10), flag_event(10, field="rollout_percentage", item_id="7"),
                               make_event(scope="Insight", created_at="2024-01-10T11:00:00Z")], "a.jsonl")
    subscriptions = [
        ("flags", ActivityFilter(scopes=["FeatureFlag"])),
        ("active", ActivityFilter(detail_filters={"changes[].field": {"operation": "exact", "value": "active"}})),
        ("insights by jane", ActivityFilter(scopes=["Insight"], users=["JANE@example.com"])),
        ("none", ActivityFilter(scopes=["Cohort"])),
    ]
    log = lake.scan(ACTIVITY_LOG).collect()
    matches = evaluate(log, subscriptions)
    for name, activity_filter in subscriptions:
        expected = set(query(lake, activity_filter).collect()["id"])
        assert set(matches.filter(pl.col("subscription") == name)["event_id"]) == expected
    assert matches.height == 2 + 2 + 1  # the Insight event changes "active" too


# -- webhooks ----------------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_test_vector():
    moment = datetime.fromtimestamp(1614265330, tz=timezone.utc)
    headers = signature_headers(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", '{"test": 2432232314}', moment)
    assert headers == {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
                       "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}


def test_webhook_payload_is_the_enriched_event_signed(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(15), make_event(scope="Insight", created_at="2024-01-15T11:00:00Z")], "a.jsonl")
    with Receiver() as server:
        notifications = configure(tmp_path, monkeypatch, WEBHOOK, HOOK_URL=server.url("/hook"), HOOK_SECRET=SECRET)
        report = notify_days(lake, notifications, [date(2024, 1, 15)], now=NOW, policy=FAST)
        (request,) = server.requests("/hook")
    assert report.counts["flags"]["sent"] == 1 and report.failed == 0
    payload = Webhook(SECRET).verify(request.body, request.headers)  # raises if the signature is wrong
    assert request.headers["webhook-id"].startswith("msg_") and request.headers["content-type"] == "application/json"
    assert payload["type"] == "activity_log.entry" and payload["subscription"] == "flags"
    event = payload["data"]
    assert event["scope"] == "FeatureFlag" and event["item_id"] == "42" and event["project_id"] == 1
    assert event["detail"]["changes"][0] == {"type": "FeatureFlag", "action": "changed", "field": "active",
                                             "before": False, "after": True}
    assert event["user"]["email"] == "jane@example.com" and event["created_at"] == "2024-01-15T10:00:00Z"
    assert event["summary"] == 'Jane Doe changed feature flag "flag-42": active false → true'


def test_500_then_success_delivers_once(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(15)], "a.jsonl")
    with Receiver() as server:
        server.respond("/hook", (500, {}, "boom"), (503, {}, "busy"))
        notifications = configure(tmp_path, monkeypatch, WEBHOOK, HOOK_URL=server.url("/hook"), HOOK_SECRET=SECRET)
        report = notify_days(lake, notifications, [date(2024, 1, 15)], now=NOW, policy=FAST)
        again = notify_days(lake, notifications, [date(2024, 1, 15)], now=NOW, policy=FAST)
        requests = server.requests("/hook")
    assert len(requests) == 3 and len({r.headers["webhook-id"] for r in requests}) == 1
    assert report.counts["flags"]["sent"] == 1 and again.counts["flags"]["sent"] == 0
    assert again.counts["flags"]["already"] == 1
    state = ledger_state(lake)
    assert state["status"].to_list() == ["sent"] and state["attempts"].to_list() == [3]


def test_a_timeout_is_retried(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(15)], "a.jsonl")
    with Receiver() as server:
        server.respond("/hook", (None, {}, "1.5"))  # answers only after 1.5 s
        body = WEBHOOK.replace("secret: {env: HOOK_SECRET}}", "secret: {env: HOOK_SECRET}, timeout: 0.3}")
        notifications = configure(tmp_path, monkeypatch, body, HOOK_URL=server.url("/hook"), HOOK_SECRET=SECRET)
        started = time.monotonic()
        report = notify_days(lake, notifications, [date(2024, 1, 15)], now=NOW, policy=FAST)
        assert time.monotonic() - started < 1.4  # gave up on the slow answer after its timeout
        assert len(server.requests("/hook")) == 2
    assert report.counts["flags"]["sent"] == 1 and ledger_state(lake)["attempts"].item() == 2


def test_429_waits_for_retry_after(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(15)], "a.jsonl")
    with Receiver() as server:
        server.respond("/hook", (429, {"Retry-After": "1"}, "slow down"))
        notifications = configure(tmp_path, monkeypatch, WEBHOOK, HOOK_URL=server.url("/hook"), HOOK_SECRET=SECRET)
        notify_days(lake, notifications, [date(2024, 1, 15)], now=NOW, policy=FAST)
        first, second = server.requests("/hook")
    assert second.at - first.at >= 0.95  # Retry-After, not the 10 ms backoff
    assert statuses(lake) == {"sent": 1}


def test_exhausted_retries_are_dead_letters_and_retry_failed_sends_them(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(15)], "a.jsonl")
    with Receiver() as server:
        server.respond("/hook", *[(500, {}, "down")] * 3)
        notifications = configure(tmp_path, monkeypatch, WEBHOOK, HOOK_URL=server.url("/hook"), HOOK_SECRET=SECRET)
        report = notify_days(lake, notifications, [date(2024, 1, 15)], now=NOW, policy=FAST)
        assert report.failed == 1 and "webhook answered 500: down (gave up after 3 attempts)" in report.errors[0]
        failed = ledger_state(lake).row(0, named=True)
        assert (failed["status"], failed["attempts"]) == ("failed", 3)
        assert "gave up after 3 attempts" in failed["error"]
        retried = retry_failed(lake, notifications, policy=FAST)
        assert retried.counts["flags"]["sent"] == 1
        assert len({r.headers["webhook-id"] for r in server.requests("/hook")}) == 1
    assert statuses(lake) == {"sent": 1}


def test_410_disables_the_destination_until_its_url_changes(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(15), flag_event(15, item_id="43")], "a.jsonl")
    with Receiver() as server:
        server.respond("/old", (410, {}, "gone"))
        notifications = configure(tmp_path, monkeypatch, WEBHOOK, HOOK_URL=server.url("/old"), HOOK_SECRET=SECRET)
        report = notify_days(lake, notifications, [date(2024, 1, 15)], now=NOW, policy=FAST)
        assert report.disabled and report.failed == 2 and len(server.requests("/old")) == 1
        add_events(lake, landing, [flag_event(15, item_id="44")], "b.jsonl")  # a late event, same day
        report = notify_days(lake, notifications, [date(2024, 1, 15)], now=NOW, policy=FAST)
        assert report.failed == 1 and "hook: disabled (webhook answered 410 Gone" in report.errors[0]
        assert len(server.requests("/old")) == 1  # a disabled destination is not called
        fixed = configure(tmp_path, monkeypatch, WEBHOOK, HOOK_URL=server.url("/new"), HOOK_SECRET=SECRET)
        retried = retry_failed(lake, fixed, policy=FAST)
        assert retried.counts["flags"]["sent"] == 3 and len(server.requests("/new")) == 3
    assert statuses(lake) == {"sent": 3}


def test_crash_between_send_and_record_resends_only_that_message_with_the_same_id(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(15, item_id=str(i)) for i in range(4)], "a.jsonl")

    class Crash(Exception):
        pass

    def crash_after_first(ids):
        raise Crash(ids)

    with Receiver() as server:
        notifications = configure(tmp_path, monkeypatch, WEBHOOK, HOOK_URL=server.url("/hook"), HOOK_SECRET=SECRET)
        with pytest.raises(Crash):
            notify_days(lake, notifications, [date(2024, 1, 15)], now=NOW, policy=FAST, after_send=crash_after_first)
        assert statuses(lake) == {"pending": 4}  # every intent was recorded before the first send
        report = notify_days(lake, notifications, [date(2024, 1, 15)], now=NOW, policy=FAST)
        ids = [r.headers["webhook-id"] for r in server.requests("/hook")]
    assert report.resumed == 4 and report.counts["flags"]["sent"] == 4
    assert len(ids) == 5 and len(set(ids)) == 4  # only the in-flight message twice, with the same id
    assert ids[0] == ids[1]
    assert statuses(lake) == {"sent": 4}


def test_late_event_on_an_old_day_notifies_once(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(12), flag_event(13)], "a.jsonl")
    with Receiver() as server:
        notifications = configure(tmp_path, monkeypatch, WEBHOOK, HOOK_URL=server.url("/hook"), HOOK_SECRET=SECRET)
        notify_days(lake, notifications, [date(2024, 1, 12), date(2024, 1, 13)], now=NOW, policy=FAST)
        days = add_events(lake, landing, [flag_event(12, item_id="late")], "late.jsonl")
        assert days == [date(2024, 1, 12)]
        notify_days(lake, notifications, days, now=NOW, policy=FAST)
        notify_days(lake, notifications, days, now=NOW, policy=FAST)  # the day materialized again
        items = [r.json()["data"]["item_id"] for r in server.requests("/hook")]
    assert sorted(items) == ["42", "42", "late"]


def test_backfill_horizon_records_old_events_as_skipped(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(2), flag_event(14)], "a.jsonl")  # 14 and 2 days before NOW
    with Receiver() as server:
        notifications = configure(tmp_path, monkeypatch, WEBHOOK, HOOK_URL=server.url("/hook"), HOOK_SECRET=SECRET)
        report = notify_days(lake, notifications, [date(2024, 1, 2), date(2024, 1, 14)], now=NOW, policy=FAST)
        later = notify_days(lake, notifications, [date(2024, 1, 2)], now=NOW, policy=FAST)
        assert len(server.requests("/hook")) == 1
    assert (report.counts["flags"]["sent"], report.counts["flags"]["skipped"]) == (1, 1)
    assert later.counts["flags"]["already"] == 1 and later.counts["flags"]["sent"] == 0
    assert statuses(lake) == {"sent": 1, "skipped": 1}


@pytest.mark.local_lake
def test_ledger_reads_only_the_evaluated_day(lake, landing, tmp_path, monkeypatch):
    import shutil

    add_events(lake, landing, [flag_event(d) for d in (10, 11, 12)], "a.jsonl")
    with Receiver() as server:
        notifications = configure(tmp_path, monkeypatch, WEBHOOK, HOOK_URL=server.url("/hook"), HOOK_SECRET=SECRET)
        notify_days(lake, notifications, [date(2024, 1, 10), date(2024, 1, 11)], now=NOW, policy=FAST)
        for name in ("day=2024-01-10", "day=2024-01-11"):  # older days' ledger files are never opened
            shutil.rmtree(tmp_path / "lake" / DELIVERIES / name)
        report = notify_days(lake, notifications, [date(2024, 1, 12)], now=NOW, policy=FAST)
    assert report.counts["flags"]["sent"] == 1


# -- Slack -------------------------------------------------------------------------------------


def test_slack_block_kit_batches_and_one_message_per_second(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(15, item_id=str(i)) for i in range(3)], "a.jsonl")
    with Receiver() as server:
        notifications = configure(tmp_path, monkeypatch, SLACK % "1.0", SLACK_URL=server.url("/slack"))
        report = notify_days(lake, notifications, [date(2024, 1, 15)], now=NOW, policy=FAST)
        first, second = server.requests("/slack")
    assert report.counts["flags"]["sent"] == 3
    assert second.at - first.at >= 0.95
    message = first.json()
    assert message["blocks"][0]["type"] == "context" and "*flags* · 2 events" in message["blocks"][0]["elements"][0]["text"]
    sections = [b["text"]["text"] for m in (message, second.json()) for b in m["blocks"] if b["type"] == "section"]
    assert len(sections) == 3 and len([b for b in message["blocks"] if b["type"] == "section"]) == 2
    (flag0,) = [text for text in sections if '"flag-0"' in text]
    assert flag0.startswith('*Jane Doe changed feature flag "flag-0": active false → true*')
    assert "• `active`: false → true" in flag0
    assert "<http://posthog.local/project/1/feature_flags/0|open flag-0>" in flag0


def test_slack_masked_values_stay_masked(lake, landing, tmp_path, monkeypatch):
    event = make_event(created_at="2024-01-15T10:00:00Z", scope="FeatureFlag", detail={
        "name": "f", "changes": [{"field": "api_key", "before": "sk-live-123", "after": "sk-live-456"}]})
    add_events(lake, landing, [event], "a.jsonl")
    with Receiver() as server:
        notifications = configure(tmp_path, monkeypatch, SLACK % "0", SLACK_URL=server.url("/slack"))
        notify_days(lake, notifications, [date(2024, 1, 15)], now=NOW, policy=FAST)
        body = server.requests("/slack")[0].body.decode()
    assert "sk-live" not in body
    section = json.loads(body)["blocks"][1]["text"]["text"]
    assert '• `api_key`: "masked" → "masked"' in section


def test_slack_channel_not_found_disables(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(15, item_id=str(i)) for i in range(3)], "a.jsonl")
    with Receiver() as server:
        server.respond("/slack", (404, {}, "channel_not_found"))
        notifications = configure(tmp_path, monkeypatch, SLACK % "0", SLACK_URL=server.url("/slack"))
        report = notify_days(lake, notifications, [date(2024, 1, 15)], now=NOW, policy=FAST)
        assert len(server.requests("/slack")) == 1
    assert "ops" in report.disabled and "channel_not_found" in report.disabled["ops"]
    assert report.failed == 3 and statuses(lake) == {"failed": 3}


def test_slack_429_honours_retry_after(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(15)], "a.jsonl")
    with Receiver() as server:
        server.respond("/slack", (429, {"Retry-After": "1"}, "rate_limited"))
        notifications = configure(tmp_path, monkeypatch, SLACK % "0", SLACK_URL=server.url("/slack"))
        notify_days(lake, notifications, [date(2024, 1, 15)], now=NOW, policy=FAST)
        first, second = server.requests("/slack")
    assert second.at - first.at >= 0.95 and statuses(lake) == {"sent": 1}


def test_template_error_is_reported_clearly(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(15)], "a.jsonl")
    (tmp_path / "custom.j2").write_text("Flag {{ resource_name }}\nby {{ actor_nmae }}\n")
    body = SLACK % "0" + "      template: custom.j2\n"
    body = body.replace("- {name: flags, filter: {scopes: [FeatureFlag]}, destinations: [ops]}\n      template",
                        "- name: flags\n      filter: {scopes: [FeatureFlag]}\n      destinations: [ops]\n      template")
    with Receiver() as server:
        notifications = configure(tmp_path, monkeypatch, body, SLACK_URL=server.url("/slack"))
        report = notify_days(lake, notifications, [date(2024, 1, 15)], now=NOW, policy=FAST)
        assert server.requests("/slack") == []
    assert report.failed == 1
    assert "custom.j2: line 2: UndefinedError: 'actor_nmae' is undefined" in report.errors[0]
    assert "'actor_nmae' is undefined" in ledger_state(lake)["error"].item()


def test_send_test_sends_one_unrecorded_sample(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(15)], "a.jsonl")
    with Receiver() as server:
        notifications = configure(tmp_path, monkeypatch, WEBHOOK, HOOK_URL=server.url("/hook"), HOOK_SECRET=SECRET)
        assert send_test(lake, notifications, "flags", log=lambda _: None, policy=FAST) == []
        (request,) = server.requests("/hook")
    assert request.headers["webhook-id"].startswith("test_") and lake.table(DELIVERIES) is None


def test_file_destination_appends_json_lines(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(15), flag_event(15, item_id="9")], "a.jsonl")
    notifications = configure(tmp_path, monkeypatch, """\
notifications:
  destinations: {out: {type: file, path: out/notifications.jsonl}}
  subscriptions: [{name: all, destinations: [out]}]
""")
    first = notify_days(lake, notifications, [date(2024, 1, 15)], now=NOW)
    assert first.counts["all"]["sent"] == 2
    notify_days(lake, notifications, [date(2024, 1, 15)], now=NOW)
    lines = [json.loads(line) for line in (tmp_path / "out" / "notifications.jsonl").read_text().splitlines()]
    assert sorted(line["event"]["item_id"] for line in lines) == ["42", "9"]
    assert all(line["delivery_id"].startswith("msg_") and line["subscription"] == "all" for line in lines)
