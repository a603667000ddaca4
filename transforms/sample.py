"""Deterministic sample data: PostHog-format activity-log change events.

Everything here is a pure function of its arguments (the seed, the day range, the sizes): the same call
writes the same bytes. No Dagster, nothing printed; callers report progress through ``progress``.

- :func:`write_demo_landing` writes a realistic landing directory for the demo and the end-to-end tests:
  one NDJSON file per day plus every input format the ingest accepts (``.jsonl``, ``.jsonl.gz``, a BOM +
  CRLF ``.ndjson``, a ``.json`` array, a PostHog API page), late events, duplicates, blank lines and a
  small set of bad lines, with exact counts in the returned :class:`SampleReport`.
- :func:`write_bench_landing` writes large, clean NDJSON files quickly (~850 bytes a line) for benchmarks.
- :func:`write_reference_data` writes the users / projects / organizations CSVs of the same universe
  (the universe is a function of the seed, so pass the events' seed).
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

__all__ = [
    "SampleReport",
    "write_demo_landing",
    "write_bench_landing",
    "write_reference_data",
]

Progress = Callable[[int], None] | None


@dataclass
class SampleReport:
    files: list[Path]
    events: int  # distinct valid events written
    duplicate_lines: int
    malformed_lines: int
    late_events: int
    blank_lines: int
    start_day: date
    end_day: date
    malformed_reasons: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# Universe: organizations, projects, users
# --------------------------------------------------------------------------------------------------

_ORG_NAMES = [
    "Acme Corp", "Globex Inc", "Initech", "Umbrella Labs", "Hooli", "Wayne Enterprises",
    "Stark Industries", "Cyberdyne Systems", "Soylent Co", "Tyrell Corp",
]
_PROJECT_KINDS = [
    "Web App", "Mobile App", "Marketing Site", "Data Platform", "Internal Tools", "Checkout",
    "Billing Service", "Docs", "Admin Console", "Partner Portal",
]
_FIRST = [
    "Jane", "John", "Priya", "Wei", "Carlos", "Fatima", "Olga", "Kwame", "Mei", "Liam", "Aisha",
    "Noah", "Sofia", "Mateo", "Yuki", "Elena", "Omar", "Chloé", "Ravi", "Ingrid", "Tomás", "Zoe",
    "Hiro", "Amara", "Lukas", "Nadia", "Diego", "Freya", "Sam", "Anya", "Björn", "Leila",
]
_LAST = [
    "Doe", "Smith", "Patel", "Zhang", "García", "Haddad", "Ivanova", "Mensah", "Chen", "O'Brien",
    "Khan", "Müller", "Rossi", "Silva", "Tanaka", "Novak", "Farouk", "Dubois", "Iyer", "Larsen",
    "Kowalski", "Nguyen", "Okafor", "Schmidt", "Fernández", "Petrova", "Costa", "Berg", "Reyes",
    "Walsh", "Johansson", "Abebe",
]
_USERS_PER_ORG = 20
_PROJECTS_PER_ORG = 4
_N_ORGS = 3


@dataclass(frozen=True)
class _Org:
    id: str
    name: str
    domain: str


@dataclass(frozen=True)
class _Project:
    team_id: int
    org: int  # index into orgs
    name: str


@dataclass(frozen=True)
class _User:
    id: int
    uuid: str
    email: str
    first_name: str
    last_name: str
    org: int
    role: str
    ips: tuple[str, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "uuid": self.uuid,
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
        }


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ascii_slug(text: str, sep: str = ".") -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return sep.join("".join(c for c in part if c.isalnum()) for part in folded.lower().split())


@dataclass
class _Universe:
    orgs: list[_Org]
    projects: list[_Project]
    users: list[_User]
    users_by_org: list[list[_User]]
    admins_by_org: list[list[_User]]
    user_weights_by_org: list[list[float]]

    @staticmethod
    def build(seed: int) -> "_Universe":
        rng = random.Random(f"activitylog-universe-{seed}")
        orgs = []
        for name in rng.sample(_ORG_NAMES, _N_ORGS):
            orgs.append(_Org(id=_uuid4(rng), name=name, domain=_ascii_slug(name, "-") + ".example"))
        projects = []
        for o, org in enumerate(orgs):
            short = org.name.split()[0]
            for kind in rng.sample(_PROJECT_KINDS, _PROJECTS_PER_ORG):
                projects.append(_Project(team_id=len(projects) + 1, org=o, name=f"{short} {kind}"))
        ids = sorted(rng.sample(range(1, 4000), _N_ORGS * _USERS_PER_ORG))
        rng.shuffle(ids)
        users: list[_User] = []
        emails: set[str] = set()
        for o, org in enumerate(orgs):
            for k in range(_USERS_PER_ORG):
                first, last = rng.choice(_FIRST), rng.choice(_LAST)
                local = f"{_ascii_slug(first)}.{_ascii_slug(last)}"
                email, n = f"{local}@{org.domain}", 2
                while email in emails:
                    email, n = f"{local}{n}@{org.domain}", n + 1
                emails.add(email)
                role = "owner" if k == 0 else "admin" if k <= 3 else "member"
                n_ips = 1 if rng.random() < 0.7 else 2
                ips = tuple(
                    f"2001:db8:{o + 1:x}::{rng.randrange(1, 0xFFFF):x}"
                    if rng.random() < 0.08
                    else f"{rng.choice(('203.0.113', '198.51.100'))}.{rng.randrange(1, 255)}"
                    for _ in range(n_ips)
                )
                users.append(
                    _User(
                        id=ids[len(users)], uuid=_uuid4(rng), email=email, first_name=first,
                        last_name=last, org=o, role=role, ips=ips,
                    )
                )
        users_by_org = [[u for u in users if u.org == o] for o in range(len(orgs))]
        admins_by_org = [[u for u in us if u.role != "member"] for us in users_by_org]
        # A few people do most of the work.
        weights = [[round(1.0 / (1 + i) ** 0.8, 6) for i in range(len(us))] for us in users_by_org]
        for w in weights:
            rng.shuffle(w)
        return _Universe(orgs, projects, users, users_by_org, admins_by_org, weights)


def write_reference_data(directory: Path, *, seed: int = 20240115) -> dict[str, Path]:
    """Write users.csv, projects.csv and organizations.csv for the universe of ``seed``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    uni = _Universe.build(seed)
    paths = {
        "users": directory / "users.csv",
        "projects": directory / "projects.csv",
        "organizations": directory / "organizations.csv",
    }
    with paths["users"].open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "uuid", "email", "first_name", "last_name", "organization_id", "role"])
        for u in sorted(uni.users, key=lambda u: u.id):
            w.writerow([u.id, u.uuid, u.email, u.first_name, u.last_name, uni.orgs[u.org].id, u.role])
    with paths["projects"].open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["team_id", "organization_id", "name"])
        for p in uni.projects:
            w.writerow([p.team_id, uni.orgs[p.org].id, p.name])
    with paths["organizations"].open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["organization_id", "name"])
        for org in uni.orgs:
            w.writerow([org.id, org.name])
    return paths


# --------------------------------------------------------------------------------------------------
# Value pools
# --------------------------------------------------------------------------------------------------

_FLAG_PREFIX = ["new", "beta", "enable", "show", "use", "experimental", "holdout", "rollout"]
_FLAG_NOUN = [
    "checkout-flow", "onboarding", "pricing-page", "dark-mode", "search-v2", "billing-portal",
    "ai-assistant", "session-replay", "mobile-nav", "recommendations", "signup-form", "export-csv",
]
_NAMES = {
    "Insight": [
        "Weekly active users", "Signup funnel", "Checkout conversion", "Retention by cohort",
        "Pageviews by country", "Revenue per plan", "Feature adoption", "Churn risk", "DAU/MAU",
        "Time to first value", "Trial to paid", "Errors per release",
    ],
    "Dashboard": [
        "Product overview", "Growth", "Marketing KPIs", "Engineering health", "Sales pipeline",
        "Onboarding", "Web analytics", "Exec summary",
    ],
    "Experiment": [
        "Pricing page test", "Onboarding checklist", "CTA color", "Free trial length", "Search ranking",
        "Annual plan nudge",
    ],
    "Cohort": [
        "Power users", "Churned last 30d", "Enterprise accounts", "Beta testers", "Mobile-only users",
        "Signed up this week", "Trial users",
    ],
    "Notebook": ["Incident review", "Q3 planning", "Funnel deep dive", "Launch retro", "Weekly metrics"],
    "Survey": [
        "NPS", "Feature feedback", "Cancellation reasons", "Onboarding survey", "CSAT after support",
    ],
    "Action": ["Clicked signup", "Completed checkout", "Viewed pricing", "Invited teammate", "Uploaded file"],
    "HogFunction": ["Slack alerts", "Webhook to CRM", "HubSpot sync", "Customer.io", "Salesforce", "Zapier"],
    "Annotation": [
        "Deployed v2.3", "Marketing campaign launched", "Outage 14:00-14:30 UTC", "Pricing change",
        "Black Friday", "SDK upgrade",
    ],
    "Role": ["Engineering", "Marketing", "Read-only", "Support", "Data team", "Contractors"],
    "PersonalAPIKey": ["CI deploy", "Terraform", "Local dev", "Data export", "Zapier", "Backfill script"],
}
_EVENTS = ["$pageview", "$autocapture", "signed_up", "checkout_completed", "$identify", "plan_upgraded",
           "invite_sent", "file_uploaded", "$exception", "subscription_cancelled"]
_PERSON_PROPS = ["email", "plan", "$browser", "$os", "country", "company_size", "is_internal", "signup_date",
                 "$initial_referring_domain", "app_version"]
_OPERATORS = ["exact", "is_not", "icontains", "not_icontains", "regex", "gt", "lt", "is_set"]
_TAGS = ["growth", "billing", "mobile", "q3", "experiment", "deprecated", "core", "marketing"]
_TIMEZONES = ["UTC", "Europe/London", "America/New_York", "Asia/Tokyo", "Europe/Berlin", "America/Sao_Paulo"]
_SCOPES_API = ["feature_flag:read", "feature_flag:write", "insight:read", "query:read", "person:read",
               "dashboard:write", "activity_log:read", "batch_export:write"]
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

# (scope, weight) for project-level and organization-level human events.
_PROJECT_SCOPES = [
    ("FeatureFlag", 24), ("Insight", 20), ("Dashboard", 12), ("Cohort", 7), ("Notebook", 7),
    ("Experiment", 6), ("Survey", 5), ("Action", 5), ("HogFunction", 5), ("Team", 4), ("Annotation", 4),
]
_ORG_SCOPES = [("OrganizationMembership", 45), ("PersonalAPIKey", 25), ("Organization", 15), ("Role", 15)]
_ACTIVITIES = {
    "FeatureFlag": (("created", 12), ("updated", 78), ("deleted", 10)),
    "Insight": (("created", 25), ("updated", 62), ("deleted", 8), ("exported", 5)),
    "Dashboard": (("created", 15), ("updated", 70), ("deleted", 7), ("shared", 8)),
    "Experiment": (("created", 20), ("updated", 60), ("launched", 10), ("deleted", 10)),
    "Cohort": (("created", 20), ("updated", 70), ("deleted", 10)),
    "Notebook": (("created", 25), ("updated", 68), ("deleted", 7)),
    "Survey": (("created", 20), ("updated", 60), ("launched", 10), ("deleted", 10)),
    "Action": (("created", 25), ("updated", 65), ("deleted", 10)),
    "HogFunction": (("created", 20), ("updated", 70), ("deleted", 10)),
    "Team": (("updated", 1),),
    "Annotation": (("created", 50), ("updated", 35), ("deleted", 15)),
    "OrganizationMembership": (("invited", 35), ("joined", 25), ("removed", 10), ("updated", 30)),
    "PersonalAPIKey": (("created", 55), ("revoked", 30), ("updated", 15)),
    "Organization": (("updated", 1),),
    "Role": (("created", 25), ("updated", 60), ("deleted", 15)),
}
_ITEMS_PER_PROJECT = {
    "FeatureFlag": 60, "Insight": 120, "Dashboard": 25, "Cohort": 20, "Notebook": 30, "Experiment": 12,
    "Survey": 10, "Action": 20, "HogFunction": 10, "Annotation": 40,
    "PersonalAPIKey": 25, "Role": 6, "OrganizationMembership": 30,
}
# System jobs: job_type -> (scope, activity, fields changed)
_SYSTEM_JOBS = [
    ("scheduled_change", "FeatureFlag", "updated", 30),
    ("scheduled_export", "Insight", "exported", 15),
    ("scheduled_export", "Dashboard", "exported", 10),
    ("batch_import", "Cohort", "created", 8),
    ("cohort_recalculation", "Cohort", "updated", 17),
    ("batch_import", "Action", "created", 5),
    ("hog_function_auto_disable", "HogFunction", "updated", 8),
    ("experiment_auto_stop", "Experiment", "updated", 7),
]

_SHARE_ORG_LEVEL = 0.05
_SHARE_SYSTEM = 0.06
_SHARE_IMPERSONATED = 0.01


def _short_id(rng: random.Random, n: int = 8) -> str:
    return "".join(rng.choice(_ALNUM) for _ in range(n))


def _iso(rng: random.Random, year: int = 2024) -> str:
    return (
        f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
        f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(10**6):06d}Z"
    )


class _Bodies:
    """Makes the scope-dependent part of events: activity, scope, item_id, detail."""

    def __init__(self, rng: random.Random, uni: _Universe):
        self.rng = rng
        self.uni = uni
        self.items: dict[tuple[int, str], list[dict[str, Any]]] = {}
        self.counters = {
            "FeatureFlag": 1000 + rng.randrange(500), "Insight": 20000 + rng.randrange(5000),
            "Dashboard": 300 + rng.randrange(100), "Cohort": 700 + rng.randrange(200),
            "Experiment": 50 + rng.randrange(50), "Survey": 80 + rng.randrange(50),
            "Action": 2000 + rng.randrange(500), "Annotation": 9000 + rng.randrange(1000),
        }
        self.project_scopes = [s for s, _ in _PROJECT_SCOPES]
        self.project_weights = [w for _, w in _PROJECT_SCOPES]
        self.org_scopes = [s for s, _ in _ORG_SCOPES]
        self.org_weights = [w for _, w in _ORG_SCOPES]
        self.system_weights = [j[3] for j in _SYSTEM_JOBS]

    # ---- items -------------------------------------------------------------------------------
    def _new_item(self, owner: int, scope: str, k: int) -> dict[str, Any]:
        rng = self.rng
        if scope == "FeatureFlag":
            name = f"{rng.choice(_FLAG_PREFIX)}-{rng.choice(_FLAG_NOUN)}"
        elif scope == "OrganizationMembership":
            name = rng.choice(self.uni.users_by_org[owner]).email
        else:
            name = rng.choice(_NAMES[scope])
        short_id = None
        if scope in ("Notebook", "PersonalAPIKey"):
            item_id = _short_id(rng, 8 if scope == "Notebook" else 12)
            short_id = item_id if scope == "Notebook" else None
        elif scope in ("HogFunction", "OrganizationMembership", "Role"):
            item_id = _uuid4(rng)
        else:
            self.counters[scope] += rng.randint(1, 9)
            item_id = str(self.counters[scope])
            if scope in ("Insight", "Dashboard"):
                short_id = _short_id(rng)
        return {"id": item_id, "name": name, "short_id": short_id}

    def _item(self, owner: int, scope: str) -> dict[str, Any]:
        key = (owner, scope)
        pool = self.items.get(key)
        if pool is None:
            n = _ITEMS_PER_PROJECT[scope]
            pool = self.items[key] = []
            names: set[str] = set()
            for k in range(n):
                item = self._new_item(owner, scope, k)
                if scope != "OrganizationMembership":
                    base, j = item["name"], 2
                    while item["name"] in names:
                        item["name"], j = f"{base}-{j}" if scope == "FeatureFlag" else f"{base} {j}", j + 1
                    names.add(item["name"])
                pool.append(item)
        # Skewed: recently touched resources are touched again.
        i = min(int(self.rng.expovariate(1.0 / (len(pool) / 4))), len(pool) - 1)
        return pool[i]

    # ---- values --------------------------------------------------------------------------------
    def _scalar(self) -> Any:
        rng = self.rng
        r = rng.random()
        if r < 0.35:
            return rng.choice(("pro", "free", "enterprise", "US", "DE", "Chrome", "iOS", "@acme.com"))
        if r < 0.55:
            return rng.randint(0, 500)
        if r < 0.65:
            return round(rng.uniform(0, 100), 2)
        if r < 0.75:
            return str(rng.randint(0, 20))  # numbers that came in as strings
        if r < 0.88:
            return rng.random() < 0.5
        if r < 0.93:
            return None
        return [rng.choice(("pro", "team", "free", "1", "2")) for _ in range(rng.randint(1, 3))]

    def _properties(self, n: int) -> list[dict[str, Any]]:
        rng = self.rng
        props = []
        for _ in range(n):
            kind = rng.choice(("person", "person", "event", "cohort", "group"))
            if kind == "cohort":
                props.append({"key": "id", "type": "cohort", "value": rng.randint(1, 999), "operator": None})
            else:
                props.append({
                    "key": rng.choice(_PERSON_PROPS), "type": kind, "value": self._scalar(),
                    "operator": rng.choice(_OPERATORS),
                })
        return props

    def _flag_filters(self) -> dict[str, Any]:
        rng = self.rng
        groups = [
            {
                "properties": self._properties(rng.randint(0, 2)),
                "rollout_percentage": rng.choice((None, 0, 10, 25, 50, 100, 33.3)),
                "variant": None,
            }
            for _ in range(rng.randint(1, 2))
        ]
        multivariate = None
        if rng.random() < 0.3:
            multivariate = {"variants": [
                {"key": "control", "name": "Control", "rollout_percentage": 50},
                {"key": "test", "name": "Test", "rollout_percentage": 50},
            ]}
        payloads: dict[str, Any] = {}
        if rng.random() < 0.2:
            payloads = {"true": json.dumps({"banner": rng.choice(("v1", "v2")), "limit": rng.randint(1, 9)})}
        return {"groups": groups, "payloads": payloads, "multivariate": multivariate,
                "aggregation_group_type_index": rng.choice((None, None, None, 0))}

    def _query(self) -> dict[str, Any]:
        rng = self.rng
        kind = rng.choice(("TrendsQuery", "TrendsQuery", "FunnelsQuery", "RetentionQuery", "HogQLQuery"))
        if kind == "HogQLQuery":
            ev = rng.choice(_EVENTS)
            return {"kind": "DataTableNode", "source": {"kind": "HogQLQuery", "query":
                    f"SELECT count() FROM events WHERE event = '{ev}' AND timestamp > now() - INTERVAL 7 DAY"}}
        series = [
            {"kind": "EventsNode", "event": rng.choice(_EVENTS), "math": rng.choice(("total", "dau", "weekly_active")),
             "properties": self._properties(rng.randint(0, 1))}
            for _ in range(rng.randint(1, 2))
        ]
        return {"kind": "InsightVizNode", "source": {
            "kind": kind, "series": series, "interval": rng.choice(("day", "week", "month")),
            "dateRange": {"date_from": rng.choice(("-7d", "-30d", "-90d", "mStart")), "date_to": None},
            "filterTestAccounts": rng.random() < 0.7,
        }}

    def _pair(self, make: Callable[[], Any]) -> tuple[Any, Any]:
        before = make()
        after = make()
        for _ in range(5):
            if after != before or type(after) is not type(before):
                break
            after = make()
        return before, after

    def _field_change(self, scope: str, field_name: str) -> tuple[Any, Any]:
        rng = self.rng
        if field_name in ("active", "enabled", "pinned", "favorited", "archived", "is_static", "post_to_slack",
                          "ensure_experience_continuity", "session_recording_opt_in", "anonymize_ips",
                          "capture_console_log_opt_in", "autocapture_opt_out", "members_can_invite",
                          "allow_publicly_shared_resources", "saved"):
            b = rng.random() < 0.5
            return b, not b
        if field_name == "enforce_2fa":
            return self._pair(lambda: rng.choice((None, True, False)))
        if field_name == "rollout_percentage":
            return self._pair(lambda: rng.choice((None, 0, 1, 5, 10, 20, 25, 50, 75, 100, 12.5, 33.3, "50", "100")))
        if field_name == "filters" and scope == "FeatureFlag":
            return self._flag_filters(), self._flag_filters()
        if field_name == "filters":
            return self._pair(lambda: {"properties": {"type": rng.choice(("AND", "OR")), "values": [
                {"type": "AND", "values": self._properties(rng.randint(1, 2))}]}})
        if field_name == "query":
            return self._query(), self._query()
        if field_name in ("name", "description", "title", "label", "content"):
            pool = _NAMES.get(scope) or _NAMES["Insight"]
            return self._pair(lambda: rng.choice((None, "", *pool, f"{rng.choice(pool)} (copy)")))
        if field_name in ("tags", "recording_domains", "data_attributes"):
            def make_list() -> list[str]:
                if field_name == "recording_domains":
                    return [f"https://{rng.choice(('app', 'www', 'staging'))}.example.com"
                            for _ in range(rng.randint(0, 2))]
                if field_name == "data_attributes":
                    return rng.sample(["data-attr", "data-testid", "data-ph-capture"], rng.randint(0, 2))
                return sorted(rng.sample(_TAGS, rng.randint(0, 3)))
            return self._pair(make_list)
        if field_name in ("dashboards", "scoped_teams"):
            return self._pair(lambda: sorted(rng.sample(range(1, 400), rng.randint(0, 3))))
        if field_name == "tiles":
            return self._pair(lambda: [{"insight": rng.randint(20000, 30000), "layouts": {"sm": {
                "x": rng.randrange(12), "y": rng.randrange(40), "w": 6, "h": 5}}} for _ in range(rng.randint(0, 3))])
        if field_name in ("restriction_level", "feature_flags_access_level"):
            return self._pair(lambda: rng.choice((21, 37, "21", "37")) if rng.random() < 0.1 else rng.choice((21, 37)))
        if field_name == "level":
            return self._pair(lambda: rng.choice((1, 8, 15)))
        if field_name in ("start_date", "end_date", "date_marker", "logo_media_id"):
            if field_name == "logo_media_id":
                return None, _uuid4(rng)
            return self._pair(lambda: rng.choice((None, _iso(rng))))
        if field_name == "parameters":
            return self._pair(lambda: {"feature_flag_variants": [
                {"key": "control", "rollout_percentage": 50}, {"key": "test", "rollout_percentage": 50}],
                "minimum_detectable_effect": rng.choice((1, 5, 2.5, "5")),
                "recommended_sample_size": rng.randint(500, 20000)})
        if field_name == "questions":
            return self._pair(lambda: [{
                "type": rng.choice(("open", "rating", "single_choice")),
                "question": rng.choice(("How likely are you to recommend us?", "What could we improve?",
                                        "Why are you cancelling?")),
                "scale": rng.choice((None, 5, 10)),
            } for _ in range(rng.randint(1, 2))])
        if field_name == "appearance":
            return self._pair(lambda: {"backgroundColor": rng.choice(("#eeeded", "#ffffff", "#1d1f27")),
                                       "position": rng.choice(("right", "left", "center")),
                                       "thankYouMessageHeader": "Thanks!", "zIndex": "2147482647"})
        if field_name in ("responses_limit", "session_recording_minimum_duration_milliseconds", "count",
                          "session_cookie_age", "iteration_count"):
            return self._pair(lambda: rng.choice((None, 0, 1, 100, 500, 1000, 2000, 1209600, rng.randint(1, 99999))))
        if field_name == "session_recording_sample_rate":
            return self._pair(lambda: rng.choice((None, "1", "1.00", "0.50", "0.25", "0.10")))
        if field_name == "timezone":
            return self._pair(lambda: rng.choice(_TIMEZONES))
        if field_name == "test_account_filters":
            return self._pair(lambda: self._properties(rng.randint(0, 3)))
        if field_name == "steps":
            return self._pair(lambda: [{
                "event": rng.choice(("$autocapture", "$pageview", "signed_up")),
                "selector": rng.choice((None, "button.checkout", "#signup > a", "[data-attr=\"upgrade\"]")),
                "url": rng.choice((None, "https://app.example.com/pricing", "/checkout")),
                "url_matching": rng.choice(("contains", "exact", "regex")),
                "properties": self._properties(rng.randint(0, 1)),
            } for _ in range(rng.randint(1, 2))])
        if field_name == "inputs":
            return self._pair(lambda: {
                "url": {"value": f"https://hooks.example.com/services/{_short_id(rng, 10)}"},
                "method": {"value": rng.choice(("POST", "PUT"))},
                "body": {"value": {"event": "{event}", "person": "{person}", "retries": rng.randint(0, 5)}},
            })
        if field_name == "encrypted_inputs":
            return self._pair(lambda: {
                "api_key": {"value": f"sk_live_{_short_id(rng, 24)}", "secret": True},
                "webhook_secret": {"value": _short_id(rng, 16), "secret": True},
            })
        if field_name == "hog":
            return self._pair(lambda: "let res := fetch(inputs.url, {'method': inputs.method, 'body': "
                              f"inputs.body}})\nif (res.status >= {rng.choice((400, 500))}) {{ throw Error('failed') }}")
        if field_name == "members":
            return self._pair(lambda: [u.uuid for u in rng.sample(self.uni.users, rng.randint(0, 3))])
        if field_name == "scopes":
            return self._pair(lambda: sorted(rng.sample(_SCOPES_API, rng.randint(1, 4))))
        if field_name == "deleted":
            return False, True
        # Unknown fields: anything at all.
        return self._pair(self._scalar)

    _FIELDS = {
        "FeatureFlag": (("active", 30), ("rollout_percentage", 20), ("filters", 30), ("name", 8),
                        ("ensure_experience_continuity", 4), ("tags", 8)),
        "Insight": (("name", 20), ("description", 8), ("query", 40), ("dashboards", 12), ("tags", 8),
                    ("favorited", 8), ("saved", 4)),
        "Dashboard": (("name", 15), ("description", 10), ("pinned", 15), ("tiles", 40), ("restriction_level", 10),
                      ("tags", 10)),
        "Experiment": (("name", 10), ("description", 10), ("start_date", 20), ("end_date", 20), ("parameters", 25),
                       ("archived", 15)),
        "Cohort": (("name", 20), ("filters", 60), ("is_static", 10), ("count", 10)),
        "Notebook": (("title", 30), ("content", 70)),
        "Survey": (("name", 10), ("questions", 35), ("start_date", 15), ("end_date", 10), ("appearance", 15),
                   ("responses_limit", 10), ("iteration_count", 5)),
        "Action": (("name", 25), ("steps", 55), ("description", 10), ("post_to_slack", 10)),
        "HogFunction": (("enabled", 30), ("inputs", 25), ("encrypted_inputs", 20), ("hog", 10), ("name", 15)),
        "Team": (("session_recording_opt_in", 20), ("session_recording_sample_rate", 15), ("anonymize_ips", 8),
                 ("capture_console_log_opt_in", 10), ("autocapture_opt_out", 10), ("timezone", 10),
                 ("test_account_filters", 10), ("recording_domains", 7), ("data_attributes", 5),
                 ("session_recording_minimum_duration_milliseconds", 5)),
        "Annotation": (("content", 70), ("date_marker", 30)),
        "OrganizationMembership": (("level", 1),),
        "PersonalAPIKey": (("label", 40), ("scopes", 40), ("scoped_teams", 20)),
        "Organization": (("name", 15), ("enforce_2fa", 25), ("members_can_invite", 20),
                         ("allow_publicly_shared_resources", 15), ("session_cookie_age", 15), ("logo_media_id", 10)),
        "Role": (("name", 30), ("feature_flags_access_level", 40), ("members", 30)),
    }

    def _notebook_content(self) -> dict[str, Any]:
        rng = self.rng
        paras = rng.randint(1, 2)
        return {"type": "doc", "content": [
            {"type": "heading", "attrs": {"level": 1}, "content": [{"type": "text", "text": rng.choice(_NAMES["Notebook"])}]},
            *({"type": "paragraph", "content": [{"type": "text", "text": rng.choice((
                "Conversion dropped after the release; see the funnel below.",
                "Rollout paused at 50% while we check error rates.",
                "Action items: fix the pricing page, rerun the experiment next week.",
                "Numbers are for the EU project only."))}]} for _ in range(paras)),
        ]}

    def _changes(self, scope: str, activity: str) -> list[dict[str, Any]]:
        rng = self.rng
        if activity == "created":
            if rng.random() < 0.5:
                return []
            return [{"type": scope, "action": "created", "field": None, "before": None, "after": None}]
        if activity in ("deleted", "revoked", "removed"):
            if rng.random() < 0.4:
                return []
            return [{"type": scope, "action": "changed" if activity == "deleted" else "deleted",
                     "field": "deleted", "before": False, "after": True}]
        if activity in ("invited", "joined", "shared", "exported"):
            return []
        if activity == "launched":
            return [{"type": scope, "action": "changed", "field": "start_date", "before": None, "after": _iso(rng)}]
        if rng.random() < 0.02:
            return []
        fields = self._FIELDS[scope]
        names = [f for f, _ in fields]
        weights = [w for _, w in fields]
        n = min(len(names), rng.choices((1, 2, 3), (70, 22, 8))[0])
        chosen: list[str] = []
        while len(chosen) < n:
            f = rng.choices(names, weights)[0]
            if f not in chosen:
                chosen.append(f)
        out = []
        for f in chosen:
            if f == "content":
                if scope == "Notebook":
                    before, after = self._notebook_content(), self._notebook_content()
                else:
                    before, after = self._field_change(scope, "content")
            else:
                before, after = self._field_change(scope, f)
            out.append({"type": scope, "action": "changed", "field": f, "before": before, "after": after})
        return out

    def _item_id_value(self, item_id: str) -> str | int:
        # The API sometimes sends numeric ids as JSON numbers; the ingest coerces them to strings.
        if item_id.isdigit() and self.rng.random() < 0.025:
            return int(item_id)
        return item_id

    # ---- bodies --------------------------------------------------------------------------------
    def make(self) -> dict[str, Any]:
        """One event minus the actor/time fields; keys prefixed with '_' are metadata for the assembler."""
        rng = self.rng
        r = rng.random()
        trigger = None
        if r < _SHARE_ORG_LEVEL:
            org = rng.randrange(len(self.uni.orgs))
            team_id = None
            scope = rng.choices(self.org_scopes, self.org_weights)[0]
            system = False
        else:
            project = rng.choice(self.uni.projects)
            org, team_id = project.org, project.team_id
            system = r < _SHARE_ORG_LEVEL + _SHARE_SYSTEM
            if system:
                job_type, scope, activity, _ = rng.choices(_SYSTEM_JOBS, self.system_weights)[0]
            else:
                scope = rng.choices(self.project_scopes, self.project_weights)[0]
        if not system:
            acts = _ACTIVITIES[scope]
            activity = rng.choices([a for a, _ in acts], [w for _, w in acts])[0]

        if scope == "Team":
            project = self.uni.projects[team_id - 1]
            item = {"id": str(team_id), "name": project.name, "short_id": None}
        elif scope == "Organization":
            item = {"id": self.uni.orgs[org].id, "name": self.uni.orgs[org].name, "short_id": None}
        else:
            item = self._item(team_id if team_id is not None else -1 - org, scope)

        if system:
            if job_type == "scheduled_change":
                value = rng.random() < 0.6
                changes = [{"type": scope, "action": "changed", "field": "active", "before": not value, "after": value}]
                payload: dict[str, Any] = {"operation": "update_status", "value": value,
                                           "scheduled_change_id": rng.randint(1, 5000)}
            elif job_type == "cohort_recalculation":
                changes = [{"type": scope, "action": "changed", "field": "count", "before": rng.randint(0, 50000),
                            "after": rng.randint(0, 50000)}]
                payload = {"cohort_version": rng.randint(1, 400), "duration_ms": round(rng.uniform(50, 9000), 1)}
            elif job_type in ("hog_function_auto_disable", "experiment_auto_stop"):
                f = "enabled" if scope == "HogFunction" else "end_date"
                changes = [{"type": scope, "action": "changed", "field": f,
                            "before": True if f == "enabled" else None, "after": False if f == "enabled" else _iso(rng)}]
                payload = {"reason": rng.choice(("error_rate_exceeded", "significance_reached", "budget_exhausted"))}
            elif job_type == "batch_import":
                changes = []
                payload = {"rows": rng.randint(1, 250000), "source": rng.choice(("csv_upload", "s3", "bigquery"))}
            else:  # scheduled_export
                changes = []
                payload = {"format": rng.choice(("csv", "xlsx", "png", "pdf")), "subscription_id": rng.randint(1, 900),
                           "recipients": rng.randint(1, 12)}
            trigger = {"job_type": job_type, "job_id": str(rng.randint(10**6, 10**7)), "payload": payload}
        else:
            changes = self._changes(scope, activity)

        detail: dict[str, Any] | None = {
            "name": item["name"],
            "short_id": item["short_id"],
            "type": "destination" if scope == "HogFunction" else None,
            "changes": changes,
            "trigger": trigger,
            "context": None,
        }
        if scope == "Insight" and not system and rng.random() < 0.15:
            detail["context"] = {"dashboard_id": rng.randint(300, 500), "tile_id": rng.randint(1, 3000)}
        elif system and rng.random() < 0.5:
            detail["context"] = {}
        if scope == "OrganizationMembership" and activity in ("invited", "joined") and rng.random() < 0.5:
            detail["changes"] = None
        if not system and rng.random() < 0.005:
            detail = None  # some producers send no detail at all
        return {
            "activity": activity,
            "scope": scope,
            "item_id": self._item_id_value(item["id"]),
            "detail": detail,
            "_org": org,
            "_team": team_id,
            "_system": system,
        }


# --------------------------------------------------------------------------------------------------
# Event assembly
# --------------------------------------------------------------------------------------------------

_HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 3, 5, 8, 11, 12, 12, 10, 11, 12, 12, 11, 9, 7, 5, 4, 3, 2, 1]
_EPOCH = date(1970, 1, 1)


def _day_counts(rng: random.Random, days: list[date], total: int) -> list[int]:
    """Split ``total`` over ``days`` (weekends quieter, some day-to-day noise), summing exactly."""
    if not days:
        return []
    weights = [(0.35 if d.weekday() >= 5 else 1.0) * rng.uniform(0.85, 1.15) for d in days]
    s = sum(weights)
    raw = [total * w / s for w in weights]
    counts = [int(x) for x in raw]
    rest = total - sum(counts)
    for i in sorted(range(len(days)), key=lambda i: raw[i] - counts[i], reverse=True)[:rest]:
        counts[i] += 1
    return counts


class _Assembler:
    def __init__(self, rng: random.Random, uni: _Universe, extras: bool):
        self.rng = rng
        self.uni = uni
        self.extras = extras
        self.user_json = [[_dumps(u.payload()) for u in us] for us in uni.users_by_org]
        self.user_range = [range(len(us)) for us in uni.users_by_org]
        self.org_ids = [o.id for o in uni.orgs]
        self.admin_idx = [[i for i, u in enumerate(us) if u.role != "member"] for us in uni.users_by_org]
        self.cum_weights = []
        for w in uni.user_weights_by_org:
            acc, cw = 0.0, []
            for x in w:
                acc += x
                cw.append(acc)
            self.cum_weights.append(cw)
        self.staff_ips = [f"192.0.2.{i}" for i in range(10, 20)]
        self.ci_ips = [f"198.51.100.{i}" for i in range(200, 216)]
        self.hours = list(range(24))

    def times(self, day: date, systems: list[bool]) -> list[tuple[int, int]]:
        """(microsecond-of-day, index) sorted, one per body; humans work business-ish hours."""
        rng = self.rng
        human_hours = rng.choices(self.hours, _HOUR_WEIGHTS, k=len(systems))
        out = []
        for i, system in enumerate(systems):
            h = rng.randrange(24) if system else human_hours[i]
            out.append(((h * 3600 + rng.randrange(3600)) * 10**6 + rng.randrange(10**6), i))
        out.sort()
        return out

    def line(self, body: dict[str, Any], day_epoch_s: int, day_str: str, us_of_day: int) -> str:
        """One event as a JSON line (same text as ``json.dumps(event, ensure_ascii=False)``).

        The body (activity, scope, item_id, detail) is serialized once and cached on the body, the rest
        is formatted here: this is what makes a million events cheap.
        """
        rng = self.rng
        secs, micro = divmod(us_of_day, 10**6)
        h, rem = divmod(secs, 3600)
        m, s = divmod(rem, 60)
        # UUIDv7-style id (PostHog's ids are time-ordered too).
        ms = (day_epoch_s + secs) * 1000 + micro // 1000
        r = rng.getrandbits(74)
        val = (ms << 80) | (0x7 << 76) | ((r >> 62) << 64) | (0b10 << 62) | (r & ((1 << 62) - 1))
        x = f"{val:032x}"
        frag = body.get("_json")
        if frag is None:
            frag = body["_json"] = _dumps({k: body[k] for k in ("activity", "scope", "item_id", "detail")})[1:-1]
        org = body["_org"]
        if body["_system"]:
            user_json, flags, client, ip = "null", "true, \"was_impersonated\": false", "system", "null"
        else:
            if body["_team"] is None and rng.random() < 0.8:  # organization-level changes: mostly admins
                idxs = self.admin_idx[org]
                ui = idxs[rng.randrange(len(idxs))]
            else:
                ui = rng.choices(self.user_range[org], cum_weights=self.cum_weights[org])[0]
            user = self.uni.users_by_org[org][ui]
            user_json = self.user_json[org][ui]
            c = rng.random()
            if c < _SHARE_IMPERSONATED / (1 - _SHARE_SYSTEM):
                flags, client, ip = "false, \"was_impersonated\": true", "web", rng.choice(self.staff_ips)
            else:
                flags = "false, \"was_impersonated\": false"
                if c < 0.72:
                    client, ip = "web", rng.choice(user.ips)
                elif c < 0.94:
                    client, ip = "api", rng.choice(user.ips) if rng.random() < 0.5 else rng.choice(self.ci_ips)
                else:
                    client, ip = "terraform", rng.choice(self.ci_ips)
            ip = f'"{ip}"'
        team = body["_team"]
        team_part = "" if team is None else f'"team_id": {team}, '
        extra = ""
        if self.extras and rng.random() < 0.004:
            # Unknown top-level fields from newer producers: kept verbatim by the ingest.
            if rng.random() < 0.6:
                extra = ', "source_region": ' + _dumps(rng.choice(("us-east-1", "eu-central-1")))
            else:
                extra = ', "producer": ' + _dumps({"name": "posthog", "version": rng.choice(("1.43.0", "1.44.2"))})
        return (
            f'{{"id": "{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}", {frag}, "user": {user_json}, '
            f'"created_at": "{day_str}T{h:02d}:{m:02d}:{s:02d}.{micro:06d}Z", "is_system": {flags}, '
            f'{team_part}"organization_id": "{self.org_ids[org]}", "client": "{client}", "ip_address": {ip}{extra}}}'
        )


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _default_end_day() -> date:
    return datetime.now(timezone.utc).date() - timedelta(days=1)


# --------------------------------------------------------------------------------------------------
# Demo landing
# --------------------------------------------------------------------------------------------------

_N_DUPLICATES = 30


def _malformed_lines(rng: random.Random, make_valid: Callable[[], dict[str, Any]]) -> list[tuple[str, str]]:
    """(reason kind, exact line) for each deliberate bad line. Every one has an id seen nowhere else."""
    out: list[tuple[str, str]] = []

    line = _dumps(make_valid())
    out.append(("invalid_json", line[: len(line) * 3 // 5]))  # truncated mid-write
    line = _dumps(make_valid())
    out.append(("invalid_json", line[:-1] + ',"team_id": }'))
    out.append(("not_an_object", _dumps(["FeatureFlag", "updated", 12345, None])))
    ev = make_valid()
    del ev["created_at"]
    out.append(("missing_created_at", _dumps(ev)))
    ev = make_valid()
    ev["created_at"] = ev["created_at"].rstrip("Z")
    out.append(("created_at_without_timezone", _dumps(ev)))
    ev = make_valid()
    ev["created_at"] = "2999" + ev["created_at"][4:]
    out.append(("created_at_in_future", _dumps(ev)))
    ev = make_valid()
    ev["scope"] = "FeatureFlagScheduledChangeRolloutPercentageMultivariateVariantPayloadOverride"
    ev["scope"] += "History"
    out.append(("scope_too_long", _dumps(ev)))
    ev = make_valid()
    ev["id"] = ""
    out.append(("empty_id", _dumps(ev)))
    ev = make_valid()
    del ev["scope"]
    out.append(("missing_scope", _dumps(ev)))
    ev = make_valid()
    ev["item_id"] = "flag-" + "x" * 80
    out.append(("item_id_too_long", _dumps(ev)))
    assert all(len(ln) > 0 for _, ln in out)
    return out


def write_demo_landing(
    landing: Path,
    *,
    events: int = 50_000,
    days: int = 30,
    end_day: date | None = None,
    seed: int = 20240115,
    progress: Progress = None,
) -> SampleReport:
    """Write ``events`` distinct valid events over ``days`` days ending ``end_day`` into ``landing``.

    One file per day (``events-YYYY-MM-DD.<ext>``) in the formats the ingest accepts, with late events,
    exact-copy duplicates, blank lines and deliberate bad lines, all counted in the report.
    """
    if days < 1:
        raise ValueError("days must be >= 1")
    if events < 0:
        raise ValueError("events must be >= 0")
    landing = Path(landing)
    landing.mkdir(parents=True, exist_ok=True)
    end_day = end_day or _default_end_day()
    start_day = end_day - timedelta(days=days - 1)
    day_list = [start_day + timedelta(days=i) for i in range(days)]

    uni = _Universe.build(seed)
    rng = random.Random(f"activitylog-demo-{seed}")
    bodies = _Bodies(rng, uni)
    asm = _Assembler(rng, uni, extras=True)
    counts = _day_counts(rng, day_list, events)

    # 1. Events per day, chronological, serialized.
    per_day: list[list[str]] = []
    written = 0
    for d, n in zip(day_list, counts):
        day_bodies = [bodies.make() for _ in range(n)]
        day_epoch = (d - _EPOCH).days * 86400
        day_str = d.isoformat()
        lines = []
        for us, i in asm.times(d, [b["_system"] for b in day_bodies]):
            lines.append(asm.line(day_bodies[i], day_epoch, day_str, us))
        per_day.append(lines)
        written += n
        if progress is not None:
            progress(written)

    # 2. Late events: ~2% of a day's events arrive in a file 1-3 days later (or the last day's file).
    files: list[list[str]] = [[] for _ in day_list]
    late: list[tuple[int, str]] = []
    last = days - 1
    for i, lines in enumerate(per_day):
        for line in lines:
            if i < last and rng.random() < 0.02:
                late.append((min(i + rng.randint(1, 3), last), line))
            else:
                files[i].append(line)
    for target, line in late:
        files[target].insert(rng.randrange(len(files[target]) + 1), line)

    # 3. Formats: the last day stays plain; a few others get every format the ingest accepts.
    fmt = ["jsonl"] * days
    candidates = list(range(days - 1))
    rng.shuffle(candidates)
    for kind in ("array", "page", "crlf_bom"):
        if candidates:
            fmt[candidates.pop()] = kind
    for _ in range(min(3, max(1, days // 10))):
        if candidates:
            fmt[candidates.pop()] = "gz"
    ndjson_files = [i for i in range(days) if fmt[i] in ("jsonl", "gz", "crlf_bom")]

    def insert_pos(i: int) -> int:
        # Never before the first line of the BOM file: the BOM stays glued to a valid event.
        lo = 1 if fmt[i] == "crlf_bom" and files[i] else 0
        return rng.randint(lo, len(files[i]))

    # 4. Duplicates: exact copies of valid lines, in the same file or another NDJSON file.
    all_positions = [(i, j) for i in range(days) for j in range(len(files[i]))]
    n_dup = min(_N_DUPLICATES, len(all_positions))
    originals = [(i, files[i][j]) for i, j in rng.sample(all_positions, n_dup)]
    for k, (src, line) in enumerate(originals):
        if fmt[src] in ("jsonl", "gz", "crlf_bom") and (k % 2 == 0 or len(ndjson_files) == 1):
            target = src
        else:
            others = [i for i in ndjson_files if i != src] or ndjson_files
            target = rng.choice(others)
        files[target].insert(insert_pos(target), line)

    # 5. Bad lines, then blank lines, only in NDJSON files.
    def make_valid() -> dict[str, Any]:
        d = rng.choice(day_list)
        us = (rng.choices(asm.hours, _HOUR_WEIGHTS)[0] * 3600 + rng.randrange(3600)) * 10**6 + rng.randrange(10**6)
        body = bodies.make()
        return json.loads(asm.line(body, (d - _EPOCH).days * 86400, d.isoformat(), us))

    reasons: dict[str, int] = {}
    bad = _malformed_lines(rng, make_valid)
    for kind, line in bad:
        target = rng.choice(ndjson_files)
        files[target].insert(insert_pos(target), line)
        reasons[kind] = reasons.get(kind, 0) + 1
    blank_targets = [rng.choice(ndjson_files) for _ in range(5)]
    crlf = [i for i in ndjson_files if fmt[i] == "crlf_bom"]
    gz = [i for i in ndjson_files if fmt[i] == "gz"]
    blank_targets += crlf[:1] + gz[:1]
    for target in blank_targets:
        files[target].insert(insert_pos(target), "")
    files[last].append("")  # a trailing blank line at the end of a file
    blank_lines = len(blank_targets) + 1

    # 6. Write.
    paths: list[Path] = []
    for i, d in enumerate(day_list):
        stem = f"events-{d.isoformat()}"
        lines = files[i]
        kind = fmt[i]
        if kind == "jsonl":
            path = landing / f"{stem}.jsonl"
            path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
        elif kind == "gz":
            path = landing / f"{stem}.jsonl.gz"
            data = ("\n".join(lines) + "\n").encode("utf-8")
            with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gzf:
                gzf.write(data)
        elif kind == "crlf_bom":
            path = landing / f"{stem}.ndjson"
            path.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n").encode("utf-8"))
        elif kind == "array":
            path = landing / f"{stem}.json"
            path.write_bytes(("[\n" + ",\n".join(lines) + "\n]\n").encode("utf-8"))
        else:  # PostHog API page
            path = landing / f"{stem}.json"
            path.write_bytes(('{"results": [\n' + ",\n".join(lines) + '\n], "next": null}\n').encode("utf-8"))
        paths.append(path)

    return SampleReport(
        files=paths,
        events=events,
        duplicate_lines=n_dup,
        malformed_lines=len(bad),
        late_events=len(late),
        blank_lines=blank_lines,
        start_day=start_day,
        end_day=end_day,
        malformed_reasons=reasons,
    )


# --------------------------------------------------------------------------------------------------
# Bench landing
# --------------------------------------------------------------------------------------------------

_BENCH_POOL = 20_000


def write_bench_landing(
    landing: Path,
    *,
    events: int = 1_000_000,
    days: int = 365,
    files: int = 20,
    end_day: date | None = None,
    seed: int = 1,
    progress: Progress = None,
) -> SampleReport:
    """Write ``events`` clean events over ``days`` days into ``files`` NDJSON files, fast.

    Files are chronological chunks named ``bench-NNNN.jsonl``; ~1% of each chunk's events arrive late,
    in the next file. No bad lines, duplicates or blank lines. Details are drawn from a pool of
    pre-built bodies (the ids, times and actors are per event).
    """
    if days < 1 or files < 1:
        raise ValueError("days and files must be >= 1")
    landing = Path(landing)
    landing.mkdir(parents=True, exist_ok=True)
    end_day = end_day or _default_end_day()
    start_day = end_day - timedelta(days=days - 1)
    day_list = [start_day + timedelta(days=i) for i in range(days)]

    uni = _Universe.build(seed)
    rng = random.Random(f"activitylog-bench-{seed}")
    bodies = _Bodies(rng, uni)
    pool = [bodies.make() for _ in range(min(_BENCH_POOL, max(events, 1)))]
    asm = _Assembler(rng, uni, extras=True)
    counts = _day_counts(rng, day_list, events)
    rand = rng.random
    pool_n = len(pool)
    paths = [landing / f"bench-{k:04d}.jsonl" for k in range(files)]

    boundaries = [events * (k + 1) // files for k in range(files)]  # chunk k ends before boundaries[k]
    chunk = 0
    handle = paths[0].open("w", encoding="utf-8", newline="\n", buffering=1 << 20)
    pending: list[str] = []  # late lines of the previous chunk, spread into this file
    carry: list[str] = []  # late lines of this chunk, for the next file
    late_events = 0
    written = 0
    next_progress = 50_000
    buf: list[str] = []

    def spread_rate() -> float:
        own = boundaries[chunk] - (boundaries[chunk - 1] if chunk else 0)
        return min(1.0, 2.0 * len(pending) / own) if own else 1.0

    rate = 0.0
    try:
        for d, n in zip(day_list, counts):
            if n == 0:
                continue
            day_bodies = [pool[int(rand() * pool_n)] for _ in range(n)]
            day_epoch = (d - _EPOCH).days * 86400
            day_str = d.isoformat()
            for us, i in asm.times(d, [b["_system"] for b in day_bodies]):
                while written >= boundaries[chunk]:
                    handle.write("".join(buf))
                    buf.clear()
                    handle.write("".join(line + "\n" for line in pending))
                    handle.close()
                    chunk += 1
                    handle = paths[chunk].open("w", encoding="utf-8", newline="\n", buffering=1 << 20)
                    pending, carry = carry, []
                    rate = spread_rate()
                line = asm.line(day_bodies[i], day_epoch, day_str, us)
                written += 1
                if chunk < files - 1 and rand() < 0.01:
                    carry.append(line)
                    late_events += 1
                else:
                    buf.append(line + "\n")
                if pending and rand() < rate:
                    buf.append(pending.pop() + "\n")
                if len(buf) >= 4096:
                    handle.write("".join(buf))
                    buf.clear()
                if progress is not None and written >= next_progress:
                    progress(written)
                    next_progress += 50_000
        handle.write("".join(buf))
        handle.write("".join(line + "\n" for line in pending))
        handle.close()
        # Only when events < files: trailing chunks are empty; the last carry goes to the next file.
        for k in range(chunk + 1, files):
            paths[k].write_text("".join(line + "\n" for line in carry), encoding="utf-8")
            carry = []
    finally:
        if not handle.closed:
            handle.close()
    if progress is not None:
        progress(written)
    return SampleReport(
        files=paths,
        events=events,
        duplicate_lines=0,
        malformed_lines=0,
        late_events=late_events,
        blank_lines=0,
        start_day=start_day,
        end_day=end_day,
        malformed_reasons={},
    )
