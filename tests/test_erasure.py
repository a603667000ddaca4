"""Erasure, proven on the files on disk: after erase-user and the vacuum, no Parquet file (decoded) and
no Delta log entry in the lake holds the user's email, names or IP; their events remain; verify passes."""

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from tests.helpers.events import make_event, write_lines
from pipelines.cli import main
from transforms.integrity import verify
from transforms.lake import ACTIVITY_LOG, Lake

EMAIL, FIRST, LAST, IP, UUID = "zoe.erasable@example.org", "Zoëtrope", "Quixotic-Lastname", "198.51.100.77", "uuid-zoe"
OTHER_EMAIL = "keep.me@example.org"


def zoe(day: int, **overrides):
    return make_event(created_at=f"2024-01-{day:02d}T10:00:00Z", ip_address=IP, user={
        "id": 77, "uuid": UUID, "email": EMAIL, "first_name": FIRST, "last_name": LAST}, **overrides)


@pytest.fixture
def erasable(tmp_path, monkeypatch):
    """A lake built by the real pipeline (Dagster runs), with the user's events, a membership change
    naming their email, a quarantined line mentioning them, and reference data listing them."""
    from pipelines.runner import run_ingest
    from transforms.settings import Settings
    from transforms.validate import ValidationSettings

    landing = tmp_path / "landing"
    events = [zoe(10), zoe(11, scope="Insight"), make_event(created_at="2024-01-11T11:00:00Z", scope="OrganizationMembership",
              user={"uuid": "uuid-admin", "email": OTHER_EMAIL, "first_name": "Ada"}, detail={
                  "name": EMAIL, "changes": [{"field": "level", "before": f"member {EMAIL}", "after": "admin"}]}),
              make_event(created_at="2024-01-12T10:00:00Z", user={"uuid": "uuid-other", "email": OTHER_EMAIL,
                                                                  "first_name": "Keep"})]
    write_lines(landing / "a.jsonl", events + [f'{{"id": "", "note": "{EMAIL}"}}'])
    lake_dir = tmp_path / "lake"
    (lake_dir / "reference").mkdir(parents=True)
    (lake_dir / "reference" / "users.csv").write_text(
        f"uuid,email,first_name,last_name,role\n{UUID},{EMAIL},{FIRST},{LAST},admin\nuuid-other,{OTHER_EMAIL},Keep,Me,member\n")
    config = tmp_path / "activitylog.yaml"
    config.write_text("retention:\n  vacuum_grace: 0d\n")
    monkeypatch.setenv("ACTIVITYLOG_CONFIG", str(config))
    monkeypatch.setenv("ACTIVITYLOG_LAKE", str(lake_dir))
    monkeypatch.setenv("ACTIVITYLOG_LANDING", str(landing))
    settings = Settings(lake=str(lake_dir), landing=str(landing), validation=ValidationSettings(start_date=date(2020, 1, 1)))
    run_ingest(settings, log_level="WARNING")
    return Lake.at(lake_dir), settings


def decoded_lake_text(root: Path) -> str:
    """Every value of every Parquet file under the lake (decoded), every Delta log entry, every other file."""
    parts = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            flat = [n for n, t in frame.schema.items() if not t.is_nested() and t != pl.Binary]
            parts.append(frame.select(pl.col(flat).cast(pl.String, strict=False)).write_csv())
            for name in [n for n, t in frame.schema.items() if t == pl.Binary]:  # salts, hashes, raw bytes
                parts.append("\n".join(v.decode("utf-8", "replace") for v in frame[name] if v is not None))
            for name, dtype in frame.schema.items():
                if dtype.is_nested():
                    parts.append(json.dumps(frame[name].to_list(), default=str, ensure_ascii=False))
        else:
            parts.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(parts)


@pytest.mark.slow
def test_erase_user_leaves_no_personal_data_in_any_file(erasable, capsys):
    lake, _ = erasable
    root = Path(lake.root)
    before = decoded_lake_text(root)
    assert all(value in before for value in (EMAIL, FIRST, LAST, IP))  # the test can see them at all
    events_before = lake.scan(ACTIVITY_LOG).select(pl.len()).collect().item()

    assert main(["erase-user", EMAIL, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Erased the personal data of 2 events on 2 day(s); they now belong to erased-" in out
    assert main(["retention", "--quiet"]) == 0  # no policy: vacuum only (grace 0d)
    capsys.readouterr()

    after = decoded_lake_text(root)
    for value in (EMAIL, FIRST, LAST, IP, UUID):
        assert value.lower() not in after.lower(), value
    assert OTHER_EMAIL in after  # others are untouched
    log = lake.scan(ACTIVITY_LOG).collect()
    assert log.height == events_before + 1  # every event stays; one more: the erasure's own record
    pseudonymous = log.filter(pl.col("actor_uuid").str.starts_with("erased-"))
    assert pseudonymous.height == 2 and pseudonymous["actor_uuid"].n_unique() == 1
    assert set(pseudonymous["actor_name"]) == {"Erased user"} and pseudonymous["ip_address"].is_null().all()
    membership = json.loads(log.filter(pl.col("scope") == "OrganizationMembership")["detail"].item())
    assert membership["name"].endswith("@erased.invalid")
    record = log.filter(pl.col("activity") == "user_erased")
    assert record["scope"].item() == "ActivityLog" and json.loads(record["detail"].item())["events"] == 2
    assert verify(lake).ok  # the chain still verifies, with a new version of each rewritten day


@pytest.mark.slow
def test_erase_user_by_uuid_and_unknown_users(erasable, capsys):
    assert main(["erase-user", "nobody@example.org"]) == 2
    assert "no events of 'nobody@example.org'" in capsys.readouterr().err
    assert main(["erase-user", UUID, "--quiet"]) == 0
    lake, _ = erasable
    assert lake.scan(ACTIVITY_LOG).filter(pl.col("actor_email") == EMAIL).collect().height == 0


@pytest.mark.slow
def test_erasure_records_reason_and_keeps_the_user_out_of_dagster_home(erasable, capsys):
    import os
    import sqlite3

    lake, _ = erasable
    assert main(["erase-user", EMAIL, "--quiet", "--reason", "GDPR request #123",
                 "--requested-by", "dpo@company.example"]) == 0
    capsys.readouterr()
    log = lake.scan(ACTIVITY_LOG).collect()
    detail = json.loads(log.filter(pl.col("activity") == "user_erased")["detail"].item())
    assert (detail["reason"], detail["requested_by"]) == ("GDPR request #123", "dpo@company.example")
    assert len(detail["request_id"]) == 32 and EMAIL not in json.dumps(detail)
    # The request file is gone once its run is done, and no file of DAGSTER_HOME names the user.
    assert not list((Path(lake.root) / "_system" / "erasure_requests").glob("*.json"))
    from dagster import DagsterInstance

    home = Path(os.environ["DAGSTER_HOME"])
    texts = []
    for path in home.rglob("*"):
        if path.is_file() and path.suffix == ".db":
            with sqlite3.connect(path) as db:
                for (table,) in db.execute("select name from sqlite_master where type='table'"):
                    texts += [repr(row) for row in db.execute(f'select * from "{table}"')]
        elif path.is_file():
            texts.append(path.read_bytes().decode("utf-8", errors="replace"))
    # Whatever the instance's storage (SQLite files or PostgreSQL), its runs and event logs as Dagster reads them.
    instance = DagsterInstance.get()
    runs = instance.get_runs()
    assert runs
    for run in runs:
        texts.append(json.dumps(run.run_config, default=str) + repr(run.tags))
        texts += [repr(record) for record in instance.all_logs(run.run_id)]
    assert any(detail["request_id"] in text for text in texts)  # the run's config names the request
    assert not any(EMAIL.lower() in text.lower() for text in texts)


@pytest.mark.slow
def test_a_request_left_by_an_interrupted_run_is_finished_first(erasable, capsys):
    from transforms.erasure_requests import pending_requests, write_request

    lake, _ = erasable
    left = write_request(lake, EMAIL, reason="interrupted")  # as if its run had been killed
    assert pending_requests(lake) == [left]
    assert main(["erase-user", "uuid-other", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"Finishing the erasure request {left} of an interrupted run first" in out
    assert pending_requests(lake) == []
    assert lake.scan(ACTIVITY_LOG).filter(pl.col("actor_email") == EMAIL).collect().height == 0


# ------------------------------------------------------------------------------------------------
# Complete erasure: the user named in other actors' events, in quarantine, in API exports; every file
# of the lake, the exports root and DAGSTER_HOME decoded afterwards.

Z_UUID = "5f0c3a4e-8b1d-4c2a-9e7f-a1b2c3d4e5f6"
Z_EMAIL, Z_FIRST, Z_LAST, Z_IP = "Zoe.Complete@Example.org", "Zoëtrope", "Quixotic-Lastname", "198.51.100.77"
ADMIN = {"id": 1, "uuid": "0aaaaaaa-0000-4000-8000-00000000000a", "email": "ada.admin@example.org",
         "first_name": "Ada", "last_name": "Admin"}


def forms_of_the_user() -> list[str]:
    """Every form the test looks for (compared case-insensitively, on text with JSON escapes read)."""
    return [Z_UUID, Z_UUID.replace("-", ""), Z_EMAIL, Z_FIRST, Z_LAST, Z_IP]


def _unescaped(text: str) -> str:
    import html
    import re

    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    return html.unescape(text.replace("\\/", "/"))


def leftovers(texts: list[str]) -> list[str]:
    """The forms of the user found in any of the texts (as written, or behind escapes), with where."""
    found = []
    for text in texts:
        for candidate in (text, _unescaped(text)):
            folded = candidate.casefold()
            for form in forms_of_the_user():
                if form.casefold() in folded:
                    at = folded.index(form.casefold())
                    found.append(f"{form!r} in …{candidate[max(0, at - 80):at + 80]!r}…")
    return found


def _stringified(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def decoded_files(root: Path) -> list[str]:
    """Every file under ``root``: Parquet files value by value (pyarrow, every column, nested and
    binary ones too), SQLite databases row by row, ZIP packages (XLSX) member by member, every other
    file (Delta logs, JSON, CSV, logs) as text."""
    import sqlite3
    import zipfile

    import pyarrow.parquet as pq

    texts = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        texts.append(data.decode("utf-8", "replace"))  # whatever else the file is, its bytes as text
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            for column in table.column_names:
                texts.append("\n".join(_stringified(v) for v in table.column(column).to_pylist() if v is not None))
        elif data[:16] == b"SQLite format 3\x00":
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                for (table_name,) in db.execute("select name from sqlite_master where type='table'"):
                    for row in db.execute(f'select * from "{table_name}"'):
                        texts.append("\n".join(_stringified(v) for v in row if v is not None))
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as package:
                texts += [package.read(name).decode("utf-8", "replace") for name in package.namelist()]
    return texts


def dagster_texts() -> list[str]:
    """The Dagster instance's runs (configuration, tags) and event logs, as Dagster reads them."""
    from dagster import DagsterInstance

    instance = DagsterInstance.get()
    texts = []
    for run in instance.get_runs():
        texts.append(json.dumps(run.run_config, default=str, ensure_ascii=False) + repr(dict(run.tags)))
        texts += [repr(record) for record in instance.all_logs(run.run_id)]
    return texts


def _complete_events() -> tuple[list, bytes]:
    zoe_user = {"id": 77, "uuid": Z_UUID, "email": Z_EMAIL, "first_name": Z_FIRST, "last_name": Z_LAST}
    own = [make_event(id="zoe-1", created_at="2024-01-10T10:00:00Z", ip_address=Z_IP, user=zoe_user),
           make_event(id="zoe-2", created_at="2024-01-11T10:00:00Z", ip_address=Z_IP, user=zoe_user, scope="User",
                      item_id=Z_UUID, detail={"name": f"{Z_FIRST} {Z_LAST}", "changes": [
                          {"type": "User", "action": "changed", "field": "first_name", "before": Z_FIRST, "after": "Zo"},
                          {"type": "User", "action": "changed", "field": "last_login_ip", "before": None, "after": Z_IP}]})]
    membership = make_event(  # another actor's event naming the user in nested objects and arrays
        id="admin-1", created_at="2024-01-12T09:00:00Z", scope="OrganizationMembership", item_id=Z_UUID,
        activity="updated", user=ADMIN, ip_address="203.0.113.9", detail={
            "name": Z_EMAIL.lower(), "short_id": None, "type": None,
            "changes": [{"type": "OrganizationMembership", "action": "changed", "field": "level",
                         "before": {"member": {"uuid": Z_UUID.upper(), "email": Z_EMAIL, "level": 1}},
                         "after": [{"uuid": Z_UUID.replace("-", ""), "email": Z_EMAIL.upper(), "level": 8,
                                    "note": f"{Z_FIRST} promoted by Ada", "big": 12345678901234567890123}]}],
            "trigger": None, "context": {"members": {Z_UUID: "admin", ADMIN["uuid"]: "owner"}, "ratio": 1.50}})
    others = [make_event(id="keep-1", created_at="2024-01-12T11:00:00Z", user=ADMIN, detail={
                  "name": "untouched", "changes": [{"field": "x", "before": "Ada", "after": 1e300}]})]
    # An invite whose detail hides the email behind JSON escapes (one raw line, written as is).
    escaped_email = "".join(f"\\u{ord(c):04x}" if c in "@." else c for c in Z_EMAIL)
    invite = json.dumps(make_event(id="admin-2", created_at="2024-01-13T09:00:00Z", scope="OrganizationInvite",
                                   user=ADMIN, detail={"name": "PLACEHOLDER"}))
    invite = invite.replace('"PLACEHOLDER"', f'"{escaped_email}", "exact": 1.50e+0')
    quarantined = [f'{{"id": "", "note": "membership of {Z_EMAIL} ({Z_UUID}), {Z_FIRST} {Z_LAST} at {Z_IP}"}}']
    not_utf8 = b'{"id": "bad-bytes", "note": "' + Z_EMAIL.encode() + b' \xff\xfe"}\n'
    return own + [membership] + others + [invite] + quarantined, not_utf8


def _wait_export(url: str, headers: dict, export_id: str, scope: str = "projects/1") -> dict:
    import time

    import httpx

    body = {}
    for _ in range(240):
        body = httpx.get(f"{url}/api/{scope}/advanced_activity_logs/exports/{export_id}", headers=headers,
                         timeout=30).json()
        if body.get("status") in ("succeeded", "failed"):
            return body
        time.sleep(0.5)
    raise AssertionError(f"export {export_id} did not finish: {body}")


@pytest.fixture
def complete(tmp_path, monkeypatch):
    """The lake built by the real pipeline, served by `activitylog serve` on 127.0.0.1, with three API
    exports made through it: two (JSONL, XLSX) hold the user's events, one (project 2) does not."""
    import os

    import httpx

    from pipelines.runner import run_ingest
    from transforms.settings import Settings
    from tests.helpers.servers import LOOPBACK, child_env, free_port, script, start_server
    from transforms.keys import create_key
    from transforms.validate import ValidationSettings

    landing = tmp_path / "landing"
    lines, not_utf8 = _complete_events()
    lines.append(make_event(id="p2-1", team_id=2, created_at="2024-01-12T12:00:00Z", user=ADMIN))
    write_lines(landing / "a.jsonl", lines)
    with open(landing / "a.jsonl", "ab") as handle:
        handle.write(not_utf8)
    lake_dir, exports = tmp_path / "lake", tmp_path / "exports"
    (lake_dir / "reference").mkdir(parents=True)
    (lake_dir / "reference" / "users.csv").write_text(
        f"uuid,email,first_name,last_name,role\n{Z_UUID},{Z_EMAIL},{Z_FIRST},{Z_LAST},member\n"
        f"{ADMIN['uuid']},{ADMIN['email']},Ada,Admin,admin\n")
    config = tmp_path / "activitylog.yaml"
    config.write_text("retention:\n  vacuum_grace: 0d\n")
    for name, value in {"ACTIVITYLOG_CONFIG": config, "ACTIVITYLOG_LAKE": lake_dir, "ACTIVITYLOG_LANDING": landing,
                        "ACTIVITYLOG_API_EXPORTS": exports}.items():
        monkeypatch.setenv(name, str(value))
    settings = Settings(lake=str(lake_dir), landing=str(landing), validation=ValidationSettings(start_date=date(2020, 1, 1)))
    run_ingest(settings, log_level="WARNING")
    lake = Lake.at(lake_dir)
    p1, p2 = create_key(lake, "org-1", [1])[0], create_key(lake, "org-1", [2])[0]
    port = free_port()
    server = start_server("activitylog-serve", [script("activitylog"), "serve", "--host", LOOPBACK, "--port", str(port)],
                          url=f"http://{LOOPBACK}:{port}/openapi.json", timeout=90, env=child_env({
                              "ACTIVITYLOG_LAKE": str(lake_dir), "ACTIVITYLOG_CONFIG": str(config),
                              "ACTIVITYLOG_API_EXPORTS": str(exports), "DAGSTER_HOME": os.environ["DAGSTER_HOME"]}))
    url = f"http://{LOOPBACK}:{port}"
    try:
        made = {}
        for name, key, project, body in [("jsonl", p1, 1, {"format": "jsonl"}), ("xlsx", p1, 1, {"format": "xlsx"}),
                                         ("unrelated", p2, 2, {"format": "csv"})]:
            headers = {"Authorization": f"Bearer {key}"}
            answer = httpx.post(f"{url}/api/projects/{project}/advanced_activity_logs/export", headers=headers,
                                json=body, timeout=30)
            assert answer.status_code == 202, answer.text
            made[name] = (answer.json()["id"], headers, f"projects/{project}")
        for name, (export_id, headers, scope) in made.items():
            assert _wait_export(url, headers, export_id, scope)["status"] == "succeeded", name
        yield {"lake": lake, "url": url, "exports": exports, "made": made}
    finally:
        server.stop()


@pytest.mark.slow
def test_erasure_leaves_no_form_of_the_user_in_any_file(complete, capsys):
    import os

    import httpx

    lake, exports, made = complete["lake"], complete["exports"], complete["made"]
    roots = [Path(lake.root), exports, Path(os.environ["DAGSTER_HOME"])]
    before = [t for root in roots for t in decoded_files(root)]
    found = " ".join(leftovers(before))
    for form in forms_of_the_user():  # the test can see every form where it is before the erasure
        assert repr(form) in found, form
    assert leftovers(decoded_files(exports / made["jsonl"][0])) and leftovers(decoded_files(exports / made["xlsx"][0]))
    assert not leftovers(decoded_files(exports / made["unrelated"][0]))
    raw_before = dict(lake.scan("activity_raw").select("id", "payload").collect().iter_rows())

    assert main(["erase-user", Z_UUID, "--quiet", "--reason", "GDPR request #9"]) == 0
    out = capsys.readouterr().out
    erased_exports = sorted([made["jsonl"][0], made["xlsx"][0]])
    assert f"API exports deleted: 2\n    {erased_exports[0]}\n    {erased_exports[1]}\n" in out
    assert main(["retention", "--quiet"]) == 0  # the vacuum (grace 0d) makes the deletion physical
    capsys.readouterr()

    after = [t for root in roots for t in decoded_files(root)] + dagster_texts()
    found = leftovers(after)
    assert not found, "\n".join(found)

    # What stays: every event, under the pseudonym where it was the user's; the others' data intact.
    log = lake.scan(ACTIVITY_LOG).collect()
    record = json.loads(log.filter(pl.col("activity") == "user_erased")["detail"].item())
    pseudonym = record["pseudonym"]
    assert (record["exports_deleted"], sorted(record["export_ids"])) == (2, erased_exports)
    assert record["identifiers_found"]["mentions"] == 2  # the membership change and the escaped invite
    assert record["dagster_runs_deleted"] == 2  # the runs of the two deleted exports
    raw_after = dict(lake.scan("activity_raw").select("id", "payload").collect().iter_rows())
    assert raw_before.keys() <= raw_after.keys()
    assert raw_after["keep-1"] == raw_before["keep-1"] and raw_after["p2-1"] == raw_before["p2-1"]  # byte for byte
    membership = json.loads(raw_after["admin-1"])
    assert membership["user"] == ADMIN and membership["ip_address"] == "203.0.113.9"  # the other actor's own
    assert membership["item_id"] == pseudonym and membership["detail"]["name"] == f"{pseudonym}@erased.invalid"
    change = membership["detail"]["changes"][0]
    assert change["before"]["member"] == {"uuid": pseudonym, "email": f"{pseudonym}@erased.invalid", "level": 1}
    assert change["after"][0]["uuid"] == pseudonym and change["after"][0]["note"] == "Erased user promoted by Ada"
    assert membership["detail"]["context"]["members"] == {pseudonym: "admin", ADMIN["uuid"]: "owner"}
    # Only the user's strings changed: numbers keep their exact text.
    assert '"big": 12345678901234567890123' in raw_after["admin-1"] and '"ratio": 1.5}' in raw_after["admin-1"]
    assert '"exact": 1.50e+0' in raw_after["admin-2"]
    assert json.loads(raw_after["admin-2"])["detail"]["name"] == f"{pseudonym}@erased.invalid"
    own = json.loads(raw_after["zoe-2"])
    assert own["user"] == {"uuid": pseudonym, "first_name": "Erased user"} and own["ip_address"] is None
    assert own["detail"]["name"] == "Erased user" and own["detail"]["changes"][1]["after"] == "erased"
    history = lake.scan("activity_item_history").collect()
    assert history.filter(pl.col("item_id") == pseudonym).height >= 2
    quarantine = lake.scan("activity_quarantine").collect()
    assert quarantine.filter(pl.col("raw_text").str.contains(f"{pseudonym}@erased.invalid ({pseudonym}), "
                                                            "Erased user at erased", literal=True)).height == 1
    bad = quarantine.filter(pl.col("raw_bytes").is_not_null())["raw_bytes"].item()
    assert bad.startswith(f'{{"id": "bad-bytes", "note": "{pseudonym}@erased.invalid \xff'.encode("latin-1")[:40])
    assert b"\xff\xfe" in bad  # the bytes that made it unreadable stay as they were
    assert verify(lake).ok

    # The exports: the two that held the user are gone, answered as failed with the reason; the other stays.
    for name in ("jsonl", "xlsx"):
        export_id, headers, scope = made[name]
        body = _wait_export(complete["url"], headers, export_id, scope)
        assert body["status"] == "failed" and "deleted by an erasure" in body["error"], body
        assert [p.name for p in (exports / export_id).iterdir()] == ["export.json"]
        assert httpx.get(f"{complete['url']}/api/{scope}/advanced_activity_logs/exports/{export_id}/file",
                         headers=headers, timeout=30).status_code == 404
    export_id, headers, scope = made["unrelated"]
    body = _wait_export(complete["url"], headers, export_id, scope)
    assert body["status"] == "succeeded"
    assert "p2-1" in httpx.get(body["file"], headers=headers, timeout=30).text


# ------------------------------------------------------------------------------------------------
# Property: arbitrary JSON documents with the user's uuid/email at random places (keys and values,
# nested, any case, behind escapes): after the erasure none is left and every other token is the
# same text, byte for byte.

import re as _re  # noqa: E402

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st  # noqa: E402

P_PSEUDONYM = "erased-0123456789abcdef"
P_UUID, P_EMAIL = "3e1f9c2a-77b0-4d1e-8f00-c0ffee123456", "prop.user+tag@mail.example.com"
P_FORMS = [P_UUID, P_UUID.upper(), P_UUID.replace("-", ""), P_UUID.replace("-", "").upper(),
           P_EMAIL, P_EMAIL.upper(), P_EMAIL.title()]


def _expected(value: str) -> str:
    """The specification, independently of the code: the email (any case) becomes the pseudonymous
    email, then the uuid with or without dashes (any case) becomes the pseudonym."""
    value = _re.sub(_re.escape(P_EMAIL), f"{P_PSEUDONYM}@erased.invalid", value, flags=_re.IGNORECASE)
    for form in (P_UUID, P_UUID.replace("-", "")):
        value = _re.sub(_re.escape(form), P_PSEUDONYM, value, flags=_re.IGNORECASE)
    return value


def _all_escaped(value: str) -> str:
    """Every UTF-16 code unit of the string as a ``\\uXXXX`` escape."""
    units = value.encode("utf-16-be").hex()
    return '"' + "".join(f"\\u{units[i:i + 4]}" for i in range(0, len(units), 4)) + '"'


_plain_text = st.text(max_size=12).filter(lambda s: not any(f.casefold() in s.casefold() for f in P_FORMS))
# Strings without the user, as a client may spell them: escapes of every kind, unpaired surrogates.
_plain_token = st.one_of(
    _plain_text.map(json.dumps), _plain_text.map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.sampled_from(['"\\ud800"', '"a\\u0000b\\u2028"', '"\\"\\\\\\/\\b\\f\\n\\r\\t"', '""', '"\\uDFFF x"']))
_named = st.tuples(_plain_text, st.sampled_from(P_FORMS), _plain_text).map(lambda t: "".join(t))
_named_token = st.tuples(_named, st.sampled_from(["ascii", "unicode", "escaped"])).map(
    lambda t: (json.dumps(t[0]) if t[1] == "ascii" else json.dumps(t[0], ensure_ascii=False) if t[1] == "unicode"
               else _all_escaped(t[0]), _expected(t[0])))
_number = st.one_of(st.sampled_from(["0", "-0", "1.50", "1e999", "-2E-7", "12345678901234567890123", "0.1000"]),
                    st.integers().map(str))
_space = st.sampled_from(["", " ", "\n  ", "\t"])


def _string() -> st.SearchStrategy:
    """A string segment: ``(text, None)`` (stays as is) or ``(text, expected value)`` (names the user)."""
    return st.one_of(_plain_token.map(lambda t: [(t, None)]), _named_token.map(lambda t: [t]))


_scalar = st.one_of(_string(), _number.map(lambda n: [(n, None)]),
                    st.sampled_from(["true", "false", "null"]).map(lambda n: [(n, None)]))


def _join(parts: list, space: str, open_: str, close: str) -> list:
    out = [(open_ + space, None)]
    for index, part in enumerate(parts):
        if index:
            out.append(("," + space, None))
        out += part
    return out + [(space + close, None)]


_value = st.recursive(_scalar, lambda children: st.one_of(
    st.tuples(st.lists(children, max_size=4), _space).map(lambda t: _join(t[0], t[1], "[", "]")),
    st.tuples(st.lists(st.tuples(_string(), _space, children).map(lambda m: m[0] + [(m[1] + ":" + m[1], None)] + m[2]),
                       max_size=4), _space).map(lambda t: _join(t[0], t[1], "{", "}"))), max_leaves=25)
_document = st.tuples(st.lists(st.tuples(_string(), _value).map(lambda m: m[0] + [(":", None)] + m[1]), max_size=6),
                      _space).map(lambda t: _join(t[0], t[1], "{", "}"))


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_document)
def test_erasure_of_arbitrary_json_replaces_every_occurrence_and_keeps_every_other_byte(segments):
    from transforms.erasure import Identity

    text = "".join(t for t, _ in segments)
    identity = Identity(pseudonym=P_PSEUDONYM, emails=frozenset({P_EMAIL}), uuids=frozenset({P_UUID}))
    erased = identity.scrub_json(text)
    # Every segment that does not name the user is the same text; each that does is a string token
    # whose value is the original with the user replaced.
    pattern = "".join(_re.escape(t) if expected is None else r'("(?:[^"\\]|\\.)*")' for t, expected in segments)
    match = _re.fullmatch(pattern, erased, flags=_re.DOTALL)
    assert match is not None, (text, erased)
    assert [json.loads(g) for g in match.groups()] == [e for _, e in segments if e is not None]
    folded = _unescaped(erased).casefold()
    assert not any(form.casefold() in folded for form in P_FORMS)
    json.loads(erased)  # still JSON
    assert identity.names_user(text) == any(e is not None for _, e in segments)
    assert not identity.names_user(erased)


def test_exports_naming_the_user_are_deleted_and_running_ones_stopped(tmp_path):
    """ExportStore.erase on real files and a real export process: a finished export whose file names
    the user (behind JSON escapes too), one whose record's filter names them, and a running one (its
    process is killed: it may be reading the lake as it was) are deleted; a record says why. An export
    without the user is left byte for byte."""
    import subprocess
    import sys
    import time

    from pipelines.api.exports import ERASED_ERROR, ExportStore, _alive
    from transforms.erasure import Identity

    store = ExportStore(tmp_path / "exports")
    identity = Identity(pseudonym=P_PSEUDONYM, emails=frozenset({P_EMAIL}), uuids=frozenset({P_UUID}))
    base = {"format": "jsonl", "created_at": "2024-01-01T00:00:00Z", "key_id": "k1", "organization_id": "org-1",
            "project_id": 1, "scope": "project:1", "sees_hidden_logins": False, "run_id": "r", "filter": {}}
    escaped = P_EMAIL.replace("@", "\\u0040")
    cases = {"in_file": ("succeeded", f'{{"detail": "{escaped}"}}\n', {}),
             "in_filter": ("succeeded", "", {"filter": {"search": P_UUID.upper()}}),
             "clean": ("succeeded", '{"detail": "someone else"}\n', {})}
    ids = {}
    for name, (status, content, extra) in cases.items():
        ids[name] = f"{len(ids):032x}"
        store.create({**base, **extra, "id": ids[name], "status": status})
        (store.directory(ids[name]) / "export.jsonl").write_text(content)
        (store.directory(ids[name]) / "export.manifest.json").write_text("{}")
    ids["running"] = "f" * 32
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        store.create({**base, "id": ids["running"], "status": "running", "pid": process.pid,
                      "host": __import__("os").uname().nodename})
        (store.directory(ids["running"]) / "export.jsonl").write_text("partial")
        clean_before = {p.name: p.read_bytes() for p in store.directory(ids["clean"]).iterdir()}
        started = time.monotonic()
        erased = store.erase(identity.names_user)
        assert erased == sorted([ids["in_file"], ids["in_filter"], ids["running"]])
        assert process.wait(timeout=10) == -9 and not _alive(process.pid)
        assert time.monotonic() - started < 10
    finally:
        process.kill()
    for name in ("in_file", "in_filter", "running"):
        directory = store.directory(ids[name])
        assert [p.name for p in directory.iterdir()] == ["export.json"]
        record = store.read(ids[name])
        assert (record["status"], record["error"], record["erased"]) == ("failed", ERASED_ERROR, True)
        assert "filter" not in record and not identity.names_user(directory.joinpath("export.json").read_text())
        assert record["scope"] == "project:1"  # still answers its own key's status request
    assert {p.name: p.read_bytes() for p in store.directory(ids["clean"]).iterdir()} == clean_before
    assert store.erase(identity.names_user) == []  # erased records are not erased again
