"""A refresh run's progress lines (assets/normalize.py: DayProgress): every day is counted in exactly one
line, the first and the last day each get a line, and days between two lines are summed into one."""

from datetime import date, timedelta

from hypothesis import given, strategies as st

from assets.normalize import DayProgress


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


def _days(counts):
    return [(date(2026, 1, 1) + timedelta(days=i), count) for i, count in enumerate(counts)]


def test_one_line_per_day_when_days_are_slow():
    log = Lines()
    progress = DayProgress(log, 3, "events", every=0)
    for day, count in _days([5, 1_200, 0]):
        progress.day(day, count)
    progress.flush()
    assert log.lines == ["[1/3] 2026-01-01: 5 events", "[2/3] 2026-01-02: 1,200 events",
                         "[3/3] 2026-01-03: 0 events"]


def test_fast_days_are_summed_into_the_next_line():
    log = Lines()
    progress = DayProgress(log, 365, "rows", every=3600)
    for day, count in _days([10] * 365):
        progress.day(day, count)
    progress.flush()
    assert log.lines == ["[1/365] 2026-01-01: 10 rows", "[365/365] 2026-01-02 … 2026-12-31: 3,640 rows (364 days)"]


@given(st.lists(st.integers(0, 10**6), max_size=60), st.sampled_from([0, 3600]), st.integers(0, 5))
def test_every_day_is_counted_once(counts, every, stop_early):
    """Also when the run stops short of its planned days (failed days): the last flush reports the rest."""
    log = Lines()
    progress = DayProgress(log, len(counts) + stop_early, "changes", every=every)
    for day, count in _days(counts):
        progress.day(day, count)
    progress.flush()
    progress.flush()  # nothing pending: no line
    total = sum(int(line.split(": ")[1].split(" ")[0].replace(",", "")) for line in log.lines)
    days = sum(int(line.split("(")[1].split(" ")[0]) if "days)" in line else 1 for line in log.lines)
    assert total == sum(counts) and days == len(counts)
    assert len(log.lines) <= len(counts) and (not counts or log.lines[0].startswith(f"[1/{len(counts) + stop_early}]"))
