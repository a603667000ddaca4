"""The activity page's tests: a two-organization world of events (``page_events``: org-a's hostile, impersonated,
system and organization-level rows, org-b's secret flag), a client on it, sign-in, the entry ids of a page,
the check that nothing of org-b shows, and viewer tokens. Each tests/test_page_*.py module has thin ``world``
(``page_world``), ``app_env`` (``page_env``) and ``client`` fixtures of its own."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from pathlib import Path

from fastapi.testclient import TestClient

from tests.helpers.events import make_event
from tests.helpers.lakes import build_lake
from transforms.keys import create_key
from transforms.lake import Lake

XSS_SCRIPT = "<script>alert('pwned')</script>"
XSS_IMG = '"><img src=x onerror=alert(1)>'
NOW = datetime.now(timezone.utc)


def ago(delta: timedelta) -> str:
    """The timestamp ``delta`` before NOW, as PostHog writes it."""
    return (NOW - delta).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def page_events() -> list[dict]:
    """Org-a's projects 1 and 2 (hostile details, impersonation, system rows, an organization-level row, an odd
    id, 60 bulk rows) and org-b's secret flag in project 3, at times relative to NOW."""
    alice = {"id": 1, "uuid": "uuid-alice", "email": "alice@org-a.example", "first_name": "Alice", "last_name": "Able"}
    mallory = {"id": 2, "uuid": "uuid-mallory", "email": "mallory@org-b.example", "first_name": "Mallory",
               "last_name": "Bravo"}
    support = {"id": 3, "uuid": "uuid-support", "email": "support@org-a.example", "first_name": "Sam",
               "last_name": "Support"}

    def detail(name, changes):
        return {"name": name, "short_id": None, "type": None, "changes": changes, "trigger": None, "context": None}

    return [
        make_event(id="a-recent", team_id=1, organization_id="org-a", user=alice, scope="FeatureFlag", item_id="42",
                   created_at=ago(timedelta(hours=2)), detail=detail("checkout-flow", [
                       {"type": "FeatureFlag", "action": "changed", "field": "description",
                        "before": "the old checkout flow", "after": "the new checkout flow"},
                       {"type": "FeatureFlag", "action": "changed", "field": "filters",
                        "before": {"groups": [1], "rollout": 10}, "after": {"groups": [1], "rollout": 50, "new": True}},
                       {"type": "FeatureFlag", "action": "changed", "field": "tags",
                        "before": ["beta", "web"], "after": ["web", "ga"]},
                       {"type": "FeatureFlag", "action": "changed", "field": "password",
                        "before": "hunter2-old-secret", "after": "hunter3-new-secret"}])),
        make_event(id="a-week", team_id=1, organization_id="org-a", user=alice, scope="FeatureFlag", item_id="42",
                   created_at=ago(timedelta(days=5)), detail=detail("checkout-flow", [
                       {"type": "FeatureFlag", "action": "changed", "field": "active", "before": False,
                        "after": True}])),
        make_event(id="a-old", team_id=1, organization_id="org-a", user=alice, scope="Insight", item_id="7",
                   activity="created", created_at=ago(timedelta(days=60)), detail=detail("revenue", [])),
        make_event(id="a-xss", team_id=1, organization_id="org-a", user=alice, scope="Dashboard", item_id="9",
                   created_at=ago(timedelta(hours=3)), detail=detail(XSS_SCRIPT + XSS_IMG, [
                       {"type": "Dashboard", "action": "changed", "field": XSS_IMG, "before": XSS_SCRIPT,
                        "after": XSS_IMG}])),
        make_event(id="a-imp", team_id=1, organization_id="org-a", user=support, scope="Insight", item_id="8",
                   was_impersonated=True, created_at=ago(timedelta(hours=4)), detail=detail("impersonated-edit", [])),
        make_event(id="a-sys", team_id=1, organization_id="org-a", user=None, scope="Insight", item_id="8",
                   is_system=True, created_at=ago(timedelta(hours=5)), detail=detail("system-edit", [])),
        make_event(id="a-p2", team_id=2, organization_id="org-a", user=alice, scope="Cohort", item_id="3",
                   created_at=ago(timedelta(hours=6)), detail=detail("project-two-cohort", [])),
        make_event(id="a-org", team_id=None, organization_id="org-a", user=alice, scope="OrganizationMembership",
                   item_id="m1", created_at=ago(timedelta(hours=7)), detail=detail("org-level-membership", [])),
        make_event(id="b-secret", team_id=3, organization_id="org-b", user=mallory, scope="FeatureFlag", item_id="42",
                   created_at=ago(timedelta(hours=1)), detail=detail("bravo-secret-flag", [
                       {"type": "FeatureFlag", "action": "changed", "field": "active", "before": True,
                        "after": False}])),
        make_event(id="a/odd?id=1&x", team_id=1, organization_id="org-a", user=alice, scope="Survey", item_id="s/1?x",
                   created_at=ago(timedelta(days=10)), detail=detail("odd-id", [])),
    ] + [make_event(id=f"a-bulk-{i:03d}", team_id=1, organization_id="org-a", user=alice, scope="Notebook",
                    item_id=f"n{i}", created_at=ago(timedelta(days=20, minutes=i)), detail=detail(f"bulk-{i}", []))
         for i in range(60)]


def page_world(root: Path) -> dict:
    """The lake of ``page_events`` under ``root`` and its keys: ``p1`` (org-a's project 1), ``admin-a``, ``p3``
    (org-b's project 3), ``admin-b`` and ``no-scope`` (project 1, without the scope activity_log:read)."""
    lake = Lake.at(root / "lake")
    build_lake(lake, root / "landing", page_events(), name="a.jsonl")
    keys = {"p1": create_key(lake, "org-a", [1])[0], "admin-a": create_key(lake, "org-a", admin=True)[0],
            "p3": create_key(lake, "org-b", [3])[0], "admin-b": create_key(lake, "org-b", admin=True)[0],
            "no-scope": create_key(lake, "org-a", [1], scopes=["other:read"])[0]}
    return {"root": root, "lake": lake, "keys": keys}


def page_env(monkeypatch, world: dict, exports: Path):
    """The page's environment for one test: the world's secret file, ``exports`` for exports, no rate limit, and
    none of the settings a test may set (session TTL, frame ancestors, public URL). Returns ``monkeypatch``."""
    monkeypatch.setenv("ACTIVITYLOG_PAGE_SECRET_FILE", str(world["root"] / "page.secret"))
    monkeypatch.setenv("ACTIVITYLOG_API_EXPORTS", str(exports))
    monkeypatch.setenv("ACTIVITYLOG_API_RATE", "100000")
    monkeypatch.delenv("ACTIVITYLOG_SESSION_TTL", raising=False)
    monkeypatch.delenv("ACTIVITYLOG_PAGE_FRAME_ANCESTORS", raising=False)
    monkeypatch.delenv("ACTIVITYLOG_PUBLIC_URL", raising=False)
    return monkeypatch


def page_client(world, **kwargs) -> TestClient:
    """A test client of the read API and the page on the world's lake."""
    from pipelines.api import create_app

    return TestClient(create_app(world["lake"].root, **kwargs), follow_redirects=False)


def csrf_token(text: str) -> str:
    """The form token of a page."""
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    assert found, text[:2000]
    return found.group(1)


def sign_in(client, world, key="p1") -> TestClient:
    """Sign ``client`` in with the world's key named ``key`` (or ``key`` itself)."""
    form = client.get("/signin")
    assert form.status_code == 200
    response = client.post("/signin", data={"key": world["keys"].get(key, key), "csrf": csrf_token(form.text),
                                            "next": "/"})
    assert response.status_code == 303, response.text
    return client


def entry_ids(text: str) -> set[str]:
    """The ids of the entries a page links to."""
    return set(re.findall(r'href="/entry/([^"?]+)', text))


B_MARKERS = ("b-secret", "bravo-secret-flag", "Mallory", "mallory@org-b.example", "uuid-mallory")


def assert_no_org_b(text: str, typed: str = "") -> None:
    """None of org-b's names or ids, except what the request itself typed (echoed in the filter form)."""
    for marker in B_MARKERS:
        if marker not in typed:
            assert marker not in text, marker
    assert not {i for i in entry_ids(text) if i.startswith("b-")}


def viewer_token(client, world, key, body) -> dict:
    """A viewer token created with the world's admin key ``key`` (admin-a or admin-b) and ``body``."""
    org = "org-a" if key.endswith("-a") else "org-b"
    response = client.post(f"/api/organizations/{org}/viewer_tokens", json=body,
                           headers={"Authorization": f"Bearer {world['keys'][key]}"})
    assert response.status_code == 201, response.text
    return response.json()
