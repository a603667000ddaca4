"""The ``changes`` of a human event's ``detail``: which fields of the resource changed and their values
before and after, in the shapes PostHog records (flag filters, insight queries, dashboard tiles, …)."""

from __future__ import annotations

import json
import random
from typing import Any, Callable

from pipelines.demo.universe import _Universe, _uuid4
from pipelines.demo.vocabulary import (
    _EVENTS, _FIELDS, _NAMES, _OPERATORS, _PERSON_PROPS, _SCOPES_API, _TAGS, _TIMEZONES, _iso, _short_id,
)


class _ChangeMaker:
    """Makes the ``changes`` list of one event (draws from the events' own ``rng``)."""

    def __init__(self, rng: random.Random, uni: _Universe):
        self.rng = rng
        self.uni = uni

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

    def changes(self, scope: str, activity: str) -> list[dict[str, Any]]:
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
        fields = _FIELDS[scope]
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

