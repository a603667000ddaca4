"""Questions in plain language (transforms/ask.py): a table of phrasings → the filter they mean, the
ones refused with the reason, arbitrary text, and the answer on the page (/ask, two organizations) and
in `activitylog ask` (a real subprocess)."""

import json
import re
import subprocess
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st

from tests.helpers.servers import child_env, script
from tests.helpers.page import entry_ids, sign_in
from transforms.ask import AskError, Vocabulary, parse_question
from transforms.filters import ActivityFilter

NOW = datetime(2024, 3, 15, 12, 0, tzinfo=timezone.utc)  # a Friday
VOCABULARY = Vocabulary.of({
    "scopes": ["FeatureFlag", "Insight", "Dashboard", "User", "CustomScope"],
    "activities": ["created", "updated", "deleted", "logged_in", "exported", "shared"],
    "users": [{"uuid": "u-jane", "email": "jane@example.com", "first_name": "Jane", "last_name": "Doe"},
              {"uuid": "u-bob", "email": "bob@example.com", "first_name": "Bob", "last_name": "Stone"},
              {"uuid": "u-bo", "email": "bo@example.com", "first_name": "Bo", "last_name": "Stone"}],
})

PHRASES = [
    ("feature flags deleted by jane@example.com in the last 30 days",
     {"scopes": ["FeatureFlag"], "activities": ["deleted"], "users": ["jane@example.com"],
      "start": "2024-02-14T12:00:00+00:00"}),
    ("who changed the billing flag yesterday",
     {"scopes": ["FeatureFlag"], "activities": ["updated"], "search": "billing",
      "start": "2024-03-14T00:00:00+00:00", "end": "2024-03-14T23:59:59.999999+00:00"}),
    ("impersonated logins this week",
     {"activities": ["logged_in"], "was_impersonated": True, "start": "2024-03-11T00:00:00+00:00"}),
    ("insights", {"scopes": ["Insight"]}),
    ("Insights", {"scopes": ["Insight"]}),
    ("dashboards", {"scopes": ["Dashboard"]}),
    ("feature flag", {"scopes": ["FeatureFlag"]}),
    ("featureflags", {"scopes": ["FeatureFlag"]}),
    ("FeatureFlag", {"scopes": ["FeatureFlag"]}),
    ("flags", {"scopes": ["FeatureFlag"]}),
    ("cohorts", {"scopes": ["Cohort"]}),
    ("hog functions", {"scopes": ["HogFunction"]}),
    ("session recording playlists", {"scopes": ["SessionRecordingPlaylist"]}),
    ("experiments and surveys", {"scopes": ["Experiment", "Survey"]}),
    ("custom scopes", {"scopes": ["CustomScope"]}),
    ("flags and insights created today", {"scopes": ["FeatureFlag", "Insight"], "activities": ["created"],
                                          "start": "2024-03-15T00:00:00+00:00"}),
    ("deleted dashboards", {"scopes": ["Dashboard"], "activities": ["deleted"]}),
    ("removed insights", {"scopes": ["Insight"], "activities": ["deleted"]}),
    ("what was edited", {"activities": ["updated"]}),
    ("new insights", {"scopes": ["Insight"], "activities": ["created"]}),
    ("who logged in", {"activities": ["logged_in"]}),
    ("shared dashboards", {"scopes": ["Dashboard"], "activities": ["shared"]}),
    ("exports last week", {"activities": ["exported"], "start": "2024-03-08T12:00:00+00:00"}),
    ("insights by jane", {"scopes": ["Insight"], "users": ["jane@example.com"]}),
    ("insights by Jane Doe", {"scopes": ["Insight"], "users": ["jane@example.com"]}),
    ("jane's feature flags", {"scopes": ["FeatureFlag"], "users": ["jane@example.com"]}),
    ("changes by JANE@EXAMPLE.COM", {"activities": ["updated"], "users": ["jane@example.com"]}),
    ("flags by jane or bob", {"scopes": ["FeatureFlag"], "users": ["jane@example.com", "bob@example.com"]}),
    ("flag 42", {"scopes": ["FeatureFlag"], "item_ids": ["42"]}),
    ("history of item 42", {"item_ids": ["42"]}),
    ("insight #7 changes", {"scopes": ["Insight"], "item_ids": ["7"], "activities": ["updated"]}),
    ("the flag named checkout", {"scopes": ["FeatureFlag"], "search": "checkout"}),
    ('dashboards "Weekly revenue"', {"scopes": ["Dashboard"], "search": "Weekly revenue"}),
    ("system changes", {"activities": ["updated"], "is_system": True}),
    ("changes by the system today", {"activities": ["updated"], "is_system": True,
                                     "start": "2024-03-15T00:00:00+00:00"}),
    ("flags changed by people", {"scopes": ["FeatureFlag"], "activities": ["updated"], "is_system": False}),
    ("not impersonated logins", {"activities": ["logged_in"], "was_impersonated": False}),
    ("in the last 24 hours", {"start": "2024-03-14T12:00:00+00:00"}),
    ("past 2 weeks", {"start": "2024-03-01T12:00:00+00:00"}),
    ("events in the last three days", {"start": "2024-03-12T12:00:00+00:00"}),
    ("insights 5 days ago", {"scopes": ["Insight"], "start": "2024-03-10T12:00:00+00:00"}),
    ("flags since 2024-01-01", {"scopes": ["FeatureFlag"], "start": "2024-01-01T00:00:00+00:00"}),
    ("flags before 2024-01-01", {"scopes": ["FeatureFlag"], "end": "2023-12-31T23:59:59.999999+00:00"}),
    ("activity on 2024-02-29", {"start": "2024-02-29T00:00:00+00:00", "end": "2024-02-29T23:59:59.999999+00:00"}),
    ("between 2024-01-01 and 2024-01-31", {"start": "2024-01-01T00:00:00+00:00",
                                           "end": "2024-01-31T23:59:59.999999+00:00"}),
    ("this month", {"start": "2024-03-01T00:00:00+00:00"}),
    ("this year", {"start": "2024-01-01T00:00:00+00:00"}),
    ("show deletions this week", {"activities": ["deleted"], "start": "2024-03-11T00:00:00+00:00"}),
    ("changes made by bob stone yesterday", {"activities": ["updated"], "users": ["bob@example.com"],
                                             "start": "2024-03-14T00:00:00+00:00",
                                             "end": "2024-03-14T23:59:59.999999+00:00"}),
    ("Who deleted the checkout-flow flag?", {"activities": ["deleted"], "scopes": ["FeatureFlag"],
                                            "search": "checkout-flow"}),
    ("history of the checkout flag", {"scopes": ["FeatureFlag"], "search": "checkout"}),
    ("flags of jane", {"scopes": ["FeatureFlag"], "users": ["jane@example.com"]}),
    ("what happened to dashboard 12", {"scopes": ["Dashboard"], "item_ids": ["12"]}),
    ("show me everything jane deleted this week", {"users": ["jane@example.com"], "activities": ["deleted"],
                                                   "start": "2024-03-11T00:00:00+00:00"}),
]

REFUSED = [
    ("", "ask a question"),
    ("   ", "ask a question"),
    ("florp blarg", "I did not understand 'florp', 'blarg'"),
    ("insihgts", "did you mean 'insights'?"),
    ("flags by nobody@example.com", "I do not know the user 'nobody@example.com'"),
    ("flags by zed", "I do not know a user called 'zed'"),
    ("changes by stone", "'stone' could be Bob Stone <bob@example.com>, Bo Stone <bo@example.com>"),
    ("definitions", "'definitions' could be any of EventDefinition, PropertyDefinition"),
    ("keys deleted", "'keys' could be any of"),
    ("flags today since 2024-01-01", "two time periods"),
    ("flags in the last 0 days", "give a positive number"),
    ("activity on 2024-02-30", "'2024-02-30' is not a date"),
    ("between 2024-02-01 and 2024-01-01", "impossible filter: end:"),
    ("the", "names no scope, action, user, period or item"),
    ("x" * 501, "at most 500 characters"),
]


def _expected(data: dict) -> dict:
    return ActivityFilter.from_dict(data).to_dict()


@pytest.mark.parametrize("question, expected", PHRASES, ids=[p for p, _ in PHRASES])
def test_a_phrasing_means_its_filter(question, expected):
    answer = parse_question(question, VOCABULARY, NOW)
    assert answer.filter.to_dict() == _expected(expected)
    # The chips are the feed's own query parameters: they read back as the same filter.
    assert ActivityFilter.from_query(answer.params).to_dict() == answer.filter.to_dict()


@pytest.mark.parametrize("question, reason", REFUSED, ids=[q[:40] or "empty" for q, _ in REFUSED])
def test_a_question_it_cannot_read_is_refused_with_the_reason(question, reason):
    with pytest.raises(AskError) as caught:
        parse_question(question, VOCABULARY, NOW)
    assert reason in str(caught.value)


def test_nonsense_is_answered_with_what_it_knows_and_examples():
    with pytest.raises(AskError) as caught:
        parse_question("purple monkey dishwasher", VOCABULARY, NOW)
    message = str(caught.value)
    assert "'purple', 'monkey', 'dishwasher'" in message
    assert "feature flags deleted by jane@example.com in the last 30 days" in message


def test_the_phrase_table_is_large_enough():
    assert len(PHRASES) + len(REFUSED) >= 40 and len(PHRASES) >= 40


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_any_text_is_a_filter_or_a_reason(text):
    try:
        answer = parse_question(text, VOCABULARY, NOW)
    except AskError as exc:
        assert str(exc)
    else:
        assert answer.chips and isinstance(answer.filter, ActivityFilter)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["flags", "insights", "deleted", "by", "jane", "today", "the", "42", "system",
                                 "impersonated", "in", "last", "7", "days", "item", "changed"]), max_size=8))
def test_any_sentence_of_known_words_is_a_filter_or_a_reason(words):
    try:
        parse_question(" ".join(words), VOCABULARY, NOW)
    except AskError as exc:
        assert str(exc)


# ------------------------------------------------------------------------------------------------
# The page and the command


def test_the_feed_has_the_ask_box_as_a_get_form(client, world):
    sign_in(client, world, "p1")
    page = client.get("/")
    assert page.status_code == 200
    assert '<form class="ask" method="get" action="/ask"' in page.text
    assert '<label for="ask-q">Ask in plain language</label>' in page.text and 'id="ask-q"' in page.text


def test_a_question_on_the_page_shows_chips_counts_and_rows(client, world):
    sign_in(client, world, "p1")
    page = client.get("/ask", params={"q": "feature flags changed by alice in the last 7 days"})
    assert page.status_code == 200, page.text
    chips = dict(re.findall(r'type="text" name="([a-z_]+)" value="([^"]*)"', page.text))
    assert chips == {"scopes": "FeatureFlag", "activities": "updated", "users": "alice@org-a.example",
                     "preset": "7d"}
    assert re.search(r'id="ask-total">2 events<', page.text)
    assert entry_ids(page.text) == {"a-recent", "a-week"}
    # The chips run the feed: its own filter URL gives the same rows.
    feed = client.get("/", params=chips)
    assert feed.status_code == 200 and {"a-recent", "a-week"} <= entry_ids(feed.text)
    assert "a-imp" not in entry_ids(feed.text)


def test_a_question_the_page_cannot_read_says_why(client, world):
    sign_in(client, world, "p1")
    page = client.get("/ask", params={"q": "flags florp"})
    assert page.status_code == 400 and "I did not understand &#39;florp&#39;" in page.text
    assert 'value="flags florp"' in page.text  # the question stays in the box to be corrected


def test_a_question_never_widens_what_the_key_sees(client, world):
    sign_in(client, world, "p1")
    # Organization B's user is not a name organization A's key can ask about.
    other = client.get("/ask", params={"q": "feature flags by mallory@org-b.example"})
    assert other.status_code == 400 and "I do not know the user" in other.text
    assert "bravo" not in other.text.lower() and "Mallory" not in other.text
    flags = client.get("/ask", params={"q": "feature flags"})
    assert flags.status_code == 200 and "b-secret" not in entry_ids(flags.text) and "bravo-secret-flag" not in flags.text
    assert re.search(r'id="ask-total">2 events<', flags.text)  # project 1's two, not B's
    # Project 2 (same organization) stays outside a project-1 key, too.
    cohorts = client.get("/ask", params={"q": "cohorts"})
    assert cohorts.status_code == 200 and re.search(r'id="ask-total">0 events<', cohorts.text)


def test_organization_b_asks_and_sees_only_its_own(world, app_env):
    from tests.helpers.page import page_client

    client = sign_in(page_client(world), world, "p3")
    page = client.get("/ask", params={"q": "feature flags"})
    assert page.status_code == 200 and entry_ids(page.text) == {"b-secret"}
    refused = client.get("/ask", params={"q": "flags by alice"})
    assert refused.status_code == 400 and "alice" in refused.text and "org-a" not in refused.text


def test_asking_needs_a_session(client):
    response = client.get("/ask", params={"q": "flags"})
    assert response.status_code == 303 and response.headers["location"].startswith("/signin")


def _ask(world, *argv):
    return subprocess.run([str(script("activitylog")), "ask", *argv], capture_output=True, text=True, timeout=60,
                          env=child_env({"ACTIVITYLOG_LAKE": str(world["lake"].root)}))


def test_the_command_prints_chips_counts_and_rows(world):
    run = _ask(world, "feature flags changed by alice in the last 7 days", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["filter"]["scopes"] == ["FeatureFlag"] and out["filter"]["users"] == ["alice@org-a.example"]
    assert out["total"] == 2 and {r["id"] for r in out["rows"]} == {"a-recent", "a-week"}
    table = _ask(world, "feature flags in the last 7 days", "--team-id", "3")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0] == "Filter: [last 7 days]  [scope FeatureFlag]"
    assert "1 events: FeatureFlag updated 1" in table.stdout and "Bravo Secret flag" not in table.stdout
    assert "mallory@org-b.example" in table.stdout and "alice" not in table.stdout


def test_the_command_refuses_with_the_reason(world):
    run = _ask(world, "flags by nobody@example.com")
    assert run.returncode == 2
    assert "activitylog ask: I do not know the user 'nobody@example.com'" in run.stderr


def test_the_command_names_bad_usage_and_a_missing_table(world, tmp_path):
    assert _ask(world, "flags", "--top", "-1").returncode == 2
    run = subprocess.run([str(script("activitylog")), "ask", "flags"], capture_output=True, text=True, timeout=60,
                         env=child_env({"ACTIVITYLOG_LAKE": str(tmp_path / "empty-lake")}))
    assert run.returncode == 1 and "no activity_log table" in run.stderr and "activitylog ingest" in run.stderr


def test_a_viewer_token_asks_within_its_project(client, world):
    from tests.helpers.page import assert_no_org_b, viewer_token

    token = viewer_token(client, world, "admin-a", {"project_id": 1, "ttl": "15m"})["token"]
    page = client.get("/ask", params={"token": token, "q": "feature flags"})
    assert page.status_code == 200 and entry_ids(page.text) == {"a-recent", "a-week"}
    assert_no_org_b(page.text)
    # The chips' form keeps the token, so running the feed stays within it.
    assert f'name="token" value="{token}"' in page.text
    assert client.get("/ask", params={"token": token, "q": "cohorts"}).text.count('class="row"') == 0
    assert client.get("/ask", params={"token": token, "q": "flags", "project": "3"}).status_code == 404
