"""Complete erasure, proven on every file: the user named in other actors' events (nested, any case, behind
escapes), in quarantine (text and bytes), in API exports; after erase-user and the vacuum, every file of
the lake, the exports root and DAGSTER_HOME decoded holds no form of the user, every event stays, the
others' data byte for byte, the exports that held the user are deleted."""

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from tests.helpers.erasure import unescaped
from tests.helpers.events import make_event, write_lines
from pipelines.cli import main
from transforms.integrity import verify
from transforms.lake import ACTIVITY_LOG, Lake


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


def leftovers(texts: list[str]) -> list[str]:
    """The forms of the user found in any of the texts (as written, or behind escapes), with where."""
    found = []
    for text in texts:
        for candidate in (text, unescaped(text)):
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
