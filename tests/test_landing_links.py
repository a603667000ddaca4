"""Safe landing input, names and settings: symbolic links out of the landing area are reported, not read
(by the ingest and by the CLI), links inside it never read a file twice, hidden and temporary names are
never read; the landing limits from the environment and their usage errors. Real files, the real ingest."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers.events import make_event, write_lines
from tests.helpers.landing import HOUR, NOW, ledger, quarantine
from transforms.ingest import ingest
from transforms.lake import INGEST_LEDGER, Lake
from transforms.landing import LandingLimits, LandingSettingsError, read_file, scan_landing


# ------------------------------------------------------------------------------------------------
# Symbolic links, hidden and temporary names


def test_links_outside_the_landing_area_are_reported_not_read(landing, lake, settings, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = write_lines(outside / "secret.jsonl", ["password=hunter2", make_event()])
    (landing / "evil.jsonl").symlink_to(secret)
    (landing / "elsewhere").symlink_to(outside, target_is_directory=True)
    (landing / "loop").symlink_to("..", target_is_directory=True)  # the landing's parent: outside
    (landing / "dangling.jsonl").symlink_to(landing / "nothing-here.jsonl")
    write_lines(landing / "good.jsonl", [make_event()])
    messages: list[str] = []

    report = ingest(lake, str(landing), settings, limits=NOW, progress=messages.append)

    assert report.files_seen == 1
    assert (report.lines, report.accepted, report.quarantined) == (1, 1, 0)
    assert quarantine(lake).height == 0  # nothing of the outside file stored
    assert ledger(lake)["source"].to_list() == [str(landing / "good.jsonl")]
    assert sorted(report.warnings) == sorted([
        f"{landing / 'dangling.jsonl'} is a broken symbolic link: not read",
        f"{landing / 'elsewhere'} is a symbolic link to {outside}, outside the landing area: not read",
        f"{landing / 'evil.jsonl'} is a symbolic link to {secret}, outside the landing area: not read",
        f"{landing / 'loop'} is a symbolic link to {tmp_path}, outside the landing area: not read",
    ])
    assert sorted(m for m in messages if m.startswith("WARNING")) == sorted(f"WARNING {w}" for w in report.warnings)
    assert report.summary()["warnings"] == report.warnings


def test_a_file_swapped_for_a_link_after_listing_is_not_followed(landing, tmp_path):
    from transforms.landing import LandingError

    secret = write_lines(tmp_path / "secret.jsonl", [make_event()])
    path = write_lines(landing / "a.jsonl", [make_event()])
    file = scan_landing(str(landing)).files[0]
    path.unlink()
    path.symlink_to(secret)

    with pytest.raises(LandingError, match=f"^cannot read {path}: "):
        read_file(file, NOW)


def test_links_inside_the_landing_area_never_read_a_file_twice(landing, lake, settings):
    events = [make_event() for _ in range(3)]
    write_lines(landing / "a.jsonl", events[:2])
    write_lines(landing / "sub" / "b.jsonl", events[2:])
    (landing / "sub" / "loop").symlink_to("..", target_is_directory=True)  # the landing root again
    (landing / "self").symlink_to(".", target_is_directory=True)
    (landing / "alias.jsonl").symlink_to(landing / "a.jsonl")
    os.link(landing / "a.jsonl", landing / "hard-link.jsonl")

    report = ingest(lake, str(landing), settings, limits=NOW)

    assert report.warnings == []
    assert report.files_seen == 2
    assert (report.lines, report.accepted, report.duplicates) == (3, 3, 0)
    assert sorted(ledger(lake)["source"]) == [str(landing / "a.jsonl"), str(landing / "sub" / "b.jsonl")]


def test_hidden_and_temporary_names_are_never_read_and_a_rename_is(landing, lake, settings):
    event = make_event()
    write_lines(landing / "export.jsonl.tmp", [event])
    write_lines(landing / "export.jsonl.part", [event])
    write_lines(landing / ".export.jsonl", [event])
    write_lines(landing / ".staging" / "export.jsonl", [event])

    first = ingest(lake, str(landing), settings, limits=HOUR)
    assert (first.files_seen, first.lines) == (0, 0)

    (landing / "export.jsonl.tmp").rename(landing / "export.jsonl")
    second = ingest(lake, str(landing), settings, limits=HOUR)
    assert (second.files_seen, second.lines, second.accepted) == (1, 1, 1)


@pytest.mark.slow
def test_the_cli_does_not_follow_a_link_out_of_the_landing_area(tmp_path):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    write_lines(tmp_path / "outside" / "secret.jsonl", [make_event()])
    write_lines(landing / "good.jsonl", [make_event()])
    (landing / "secret.jsonl").symlink_to(tmp_path / "outside" / "secret.jsonl")
    env = {**os.environ, "ACTIVITYLOG_LANDING": str(landing), "ACTIVITYLOG_LAKE": str(lake),
           "ACTIVITYLOG_LANDING_QUIET_PERIOD": "0", "ACTIVITYLOG_DEFAULT_TEAM_ID": "1"}
    done = subprocess.run([str(Path(sys.executable).parent / "activitylog"), "ingest"], capture_output=True,
                          text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "outside the landing area: not read" in done.stdout + done.stderr
    stored = Lake.at(lake)
    assert stored.scan(INGEST_LEDGER).collect()["source"].to_list() == [str(landing / "good.jsonl")]


def test_bad_landing_limits_are_usage_errors_naming_the_variable(tmp_path):
    env = {**os.environ, "ACTIVITYLOG_LANDING": str(tmp_path), "ACTIVITYLOG_LAKE": str(tmp_path / "lake"),
           "ACTIVITYLOG_MAX_INFLATE_RATIO": "lots"}
    done = subprocess.run([str(Path(sys.executable).parent / "activitylog"), "ingest"], capture_output=True,
                          text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 2
    assert "ACTIVITYLOG_MAX_INFLATE_RATIO='lots' is not a ratio of at least 1, like 200" in done.stderr


def test_landing_limits_from_the_environment():
    assert LandingLimits.from_env({}) == LandingLimits()
    assert LandingLimits() == LandingLimits(4 << 30, 200.0, 16 << 20, timedelta(seconds=5))
    limits = LandingLimits.from_env({
        "ACTIVITYLOG_MAX_INFLATED_BYTES": "512MiB", "ACTIVITYLOG_MAX_INFLATE_RATIO": "50",
        "ACTIVITYLOG_MAX_LINE_BYTES": "1000000", "ACTIVITYLOG_LANDING_QUIET_PERIOD": "500ms"})
    assert limits == LandingLimits(512 << 20, 50.0, 1_000_000, timedelta(milliseconds=500))
    assert LandingLimits.from_env({"ACTIVITYLOG_LANDING_QUIET_PERIOD": "0"}).quiet_period == timedelta(0)
    for name, value, message in [
        ("ACTIVITYLOG_MAX_INFLATED_BYTES", "4 gigs", "is not a size like 16MiB, 4GiB or 1000000"),
        ("ACTIVITYLOG_MAX_LINE_BYTES", "0", "is not a size like 16MiB, 4GiB or 1000000"),
        ("ACTIVITYLOG_MAX_INFLATE_RATIO", "0.5", "is not a ratio of at least 1, like 200"),
        ("ACTIVITYLOG_LANDING_QUIET_PERIOD", "soon", "is not a duration like 5s, 500ms or 2m"),
    ]:
        with pytest.raises(LandingSettingsError, match=f"^{name}='{value}' {message}$"):
            LandingLimits.from_env({name: value})
