"""Notification tests' helpers: flag-change events, a lake built from them one landing file at a time, the
notifications of a configuration file, and the delivery ledger's counts by status."""

from __future__ import annotations

from tests.helpers.events import make_event
from tests.helpers.lakes import build_lake
from pipelines.config import load_config
from transforms.notify import ledger_state


def flag_event(day: int, field: str = "active", item_id: str = "42", **overrides):
    """A feature flag's ``field`` changed from false to true on 2024-01-``day``."""
    return make_event(item_id=item_id, created_at=f"2024-01-{day:02d}T10:00:00.000000Z", detail={
        "name": f"flag-{item_id}", "changes": [
            {"type": "FeatureFlag", "action": "changed", "field": field, "before": False, "after": True}]},
        **overrides)


def add_events(lake, landing, events, name):
    """Land ``events`` as ``name`` and build the days they changed; those days, sorted."""
    report = build_lake(lake, landing, events, name=name, days="changed")
    return sorted(report.days_changed)


def configure(tmp_path, monkeypatch, body: str, **env) -> object:
    """The notifications section of a configuration file holding ``body``, read with ``env`` set."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "activitylog.yaml"
    path.write_text(body)
    return load_config(path).notifications


def statuses(lake) -> dict[str, int]:
    """How many deliveries the ledger holds in each status."""
    state = ledger_state(lake)
    return dict(state.group_by("status").len().iter_rows()) if state.height else {}
