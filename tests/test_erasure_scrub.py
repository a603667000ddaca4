"""Erasure's scrubbing, directly: arbitrary JSON documents with the user's uuid/email at random places (keys
and values, nested, any case, behind escapes): after the erasure none is left and every other token is
the same text, byte for byte (a property); ``ExportStore.erase`` on real files and a real export process."""

import json
import re

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from tests.helpers.erasure import unescaped


P_PSEUDONYM = "erased-0123456789abcdef"
P_UUID, P_EMAIL = "3e1f9c2a-77b0-4d1e-8f00-c0ffee123456", "prop.user+tag@mail.example.com"
P_FORMS = [P_UUID, P_UUID.upper(), P_UUID.replace("-", ""), P_UUID.replace("-", "").upper(),
           P_EMAIL, P_EMAIL.upper(), P_EMAIL.title()]


def _expected(value: str) -> str:
    """The specification, independently of the code: the email (any case) becomes the pseudonymous
    email, then the uuid with or without dashes (any case) becomes the pseudonym."""
    value = re.sub(re.escape(P_EMAIL), f"{P_PSEUDONYM}@erased.invalid", value, flags=re.IGNORECASE)
    for form in (P_UUID, P_UUID.replace("-", "")):
        value = re.sub(re.escape(form), P_PSEUDONYM, value, flags=re.IGNORECASE)
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
    pattern = "".join(re.escape(t) if expected is None else r'("(?:[^"\\]|\\.)*")' for t, expected in segments)
    match = re.fullmatch(pattern, erased, flags=re.DOTALL)
    assert match is not None, (text, erased)
    assert [json.loads(g) for g in match.groups()] == [e for _, e in segments if e is not None]
    folded = unescaped(erased).casefold()
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
