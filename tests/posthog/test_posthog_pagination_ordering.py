"""posthog/api/advanced_activity_logs/test_pagination_ordering.py :: TestActivityLogCursorOrdering, over HTTP."""

from datetime import datetime, timedelta, timezone

from tests.helpers.posthog import project

STAMP = datetime(2024, 1, 15, 10, 0, tzinfo=timezone.utc)


def _create_logs(count: int, same_timestamp: bool = False) -> int:
    return project([{"scope": "FeatureFlag", "activity": "updated", "item_id": str(index), "detail": None,
                     "created_at": (STAMP if same_timestamp else STAMP + timedelta(minutes=index)).isoformat()}
                    for index in range(count)])


TWELVE = _create_logs(12)
THREE = _create_logs(3)
TIED = _create_logs(25, same_timestamp=True)
EMPTY = project([{"scope": "FeatureFlag", "item_id": "0"}])


def test_cursor_page_size_is_honored(posthog):
    response = posthog.get(f"/api/projects/{TWELVE}/advanced_activity_logs/?page_size=5")

    assert response.status_code == 200, response.json()
    assert len(response.json()["results"]) == 5
    assert response.json()["next"] is not None


def test_page_size_above_the_maximum_is_rejected(posthog):
    response = posthog.get(f"/api/projects/{EMPTY}/advanced_activity_logs/?page_size=99999")

    assert response.status_code == 400
    assert response.json()["attr"] == "page_size"


def test_ordering_always_carries_a_unique_tiebreak(posthog):
    # PostHog unit-tests activity_log_ordering(): ("-created_at", "-id") by default, ("created_at", "id")
    # for ?ordering=created_at. Over HTTP: rows sharing one timestamp come in id order, both ways.
    base = f"/api/projects/{TIED}/advanced_activity_logs/"
    default = [row["id"] for row in posthog.walk(base)]
    assert default == sorted(default, reverse=True)
    ascending = [row["id"] for row in posthog.walk(base, {"ordering": "created_at"})]
    assert ascending == sorted(ascending)


def test_ascending_ordering_is_opt_in_and_descending_is_the_default(posthog):
    base = f"/api/projects/{THREE}/advanced_activity_logs/"

    ascending = posthog.get(f"{base}?ordering=created_at")
    assert ascending.status_code == 200, ascending.json()
    assert [row["item_id"] for row in ascending.json()["results"]] == ["0", "1", "2"]

    default = posthog.get(base)
    assert [row["item_id"] for row in default.json()["results"]] == ["2", "1", "0"]


def test_unknown_ordering_value_is_rejected(posthog):
    response = posthog.get(f"/api/projects/{EMPTY}/advanced_activity_logs/?ordering=scope")

    assert response.status_code == 400
    assert response.json()["attr"] == "ordering"


def test_ascending_cursor_walk_covers_every_row(posthog):
    seen = [row["item_id"] for row in posthog.walk(
        f"/api/projects/{TIED}/advanced_activity_logs/?ordering=created_at&page_size=10")]

    assert sorted(seen) == sorted(str(index) for index in range(25))


def test_tied_timestamps_paginate_without_loss_or_repeats(posthog):
    seen = [row["item_id"] for row in posthog.walk(f"/api/projects/{TIED}/advanced_activity_logs/?page_size=10")]

    assert sorted(seen) == sorted(str(index) for index in range(25))
