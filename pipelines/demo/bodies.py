"""The scope-dependent part of each event: activity, scope, item_id and ``detail`` (resources picked from
per-project pools, system jobs with their trigger, the changes from :mod:`pipelines.demo.changes`)."""

from __future__ import annotations

import random
from typing import Any

from pipelines.demo.changes import _ChangeMaker
from pipelines.demo.universe import _Universe, _uuid4
from pipelines.demo.vocabulary import (
    _ACTIVITIES, _FLAG_NOUN, _FLAG_PREFIX, _ITEMS_PER_PROJECT, _NAMES, _ORG_SCOPES, _PROJECT_SCOPES,
    _SHARE_ORG_LEVEL, _SHARE_SYSTEM, _SYSTEM_JOBS, _iso, _short_id,
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
        self.change_maker = _ChangeMaker(rng, uni)

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
            changes = self.change_maker.changes(scope, activity)

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

