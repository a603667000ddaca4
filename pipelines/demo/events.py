"""Whole events as JSON lines: how many per day, when in the day, who (actor, client, IP) and the time-ordered
id, around a body from :mod:`pipelines.demo.bodies`; plus what both landing writers share (the seeded
start of a run, :class:`SampleReport`)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from pipelines.demo.bodies import _Bodies
from pipelines.demo.universe import _Universe
from pipelines.demo.vocabulary import _SHARE_IMPERSONATED, _SHARE_SYSTEM

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

    def day_lines(self, day: date, bodies: list[dict[str, Any]]) -> Iterator[str]:
        """The lines of one day's ``bodies``, in time order (see :meth:`times`)."""
        day_epoch = (day - _EPOCH).days * 86400
        day_str = day.isoformat()
        for us, i in self.times(day, [b["_system"] for b in bodies]):
            yield self.line(bodies[i], day_epoch, day_str, us)

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


@dataclass
class _Run:
    """Where a landing writer starts: its directory (created), its days, and the generators of the
    universe of ``seed`` drawing from one ``rng`` (named after the writer, so each has its own stream)."""

    landing: Path
    days: list[date]
    rng: random.Random
    bodies: _Bodies
    asm: _Assembler

    @staticmethod
    def start(landing: Path, *, days: int, end_day: date | None, seed: int, stream: str) -> "_Run":
        landing = Path(landing)
        landing.mkdir(parents=True, exist_ok=True)
        end_day = end_day or _default_end_day()
        start_day = end_day - timedelta(days=days - 1)
        day_list = [start_day + timedelta(days=i) for i in range(days)]

        uni = _Universe.build(seed)
        rng = random.Random(f"activitylog-{stream}-{seed}")
        return _Run(landing, day_list, rng, _Bodies(rng, uni), _Assembler(rng, uni, extras=True))
