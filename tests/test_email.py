"""Email notifications against a real SMTP server (aiosmtpd) on 127.0.0.1: subject, both bodies,
recipients, exactly once through 4xx and 5xx replies, STARTTLS with a self-signed certificate, auth."""

from datetime import date, datetime, timezone
from email import message_from_bytes
from email.policy import default

import pytest
from hypothesis import given, settings, strategies as st

from tests.helpers.events import make_event
from destinations.delivery import RetryPolicy
from destinations.dispatch import notify_days, retry_failed
from destinations.email import build_message
from pipelines.config import ConfigError
from tests.helpers.servers import SmtpServer, self_signed_certificate, server_tls_context
from tests.helpers.notify import add_events, configure, flag_event, statuses
from transforms.notify import ledger_state

NOW = datetime(2024, 1, 16, 12, tzinfo=timezone.utc)
FAST = RetryPolicy(max_attempts=3, backoff_base=0.01)
DAY = date(2024, 1, 15)

EMAIL = """\
notifications:
  destinations:
    mail: {type: email, host: 127.0.0.1, port: %d, security: %s, from: activitylog@example.com,
           to: [ops@example.com, audit@example.com], batch_size: 2,
           link_template: "http://posthog.local/project/{team_id}/feature_flags/{item_id}"%s}
  subscriptions:
    - {name: flags, filter: {scopes: [FeatureFlag]}, destinations: [mail]}
"""
AUTH = ", username: {env: SMTP_USER}, password: {env: SMTP_PASSWORD}"


def body(port: int, security: str = "none", extra: str = "") -> str:
    return EMAIL % (port, security, extra)


def parts(message):
    return (message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content())


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize("extra, env, message", [
    (AUTH, {"SMTP_USER": "ops"}, "environment variable SMTP_PASSWORD is not set"),
    (', username: {env: SMTP_USER}, password: "hunter2"', {"SMTP_USER": "ops"}, "password: must be {env: NAME}, not a literal"),
    (", username: {env: SMTP_USER}", {"SMTP_USER": "ops"}, "username and password go together"),
    (", ca_file: nowhere.pem", {}, "ca_file: file nowhere.pem does not exist"),
    (", security: ssl", {}, "security"),
])
def test_configuration_errors_name_the_field(tmp_path, monkeypatch, extra, env, message):
    monkeypatch.delenv("SMTP_PASSWORD", raising=False)
    text = body(2525, "none", extra) if "security" not in extra else body(2525, "none").replace(
        "security: none", extra.lstrip(", "))
    with pytest.raises(ConfigError) as info:
        configure(tmp_path, monkeypatch, text, **env)
    assert message in str(info.value) and "notifications.destinations.mail" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_recipient_must_be_one_address(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"to: .*'ops@example.com, x@example.com' is not one email address"):
        configure(tmp_path, monkeypatch, body(2525).replace(
            "[ops@example.com, audit@example.com]", '["ops@example.com, x@example.com"]'))


def test_a_template_syntax_error_names_the_line(tmp_path, monkeypatch):
    (tmp_path / "subject.j2").write_text("{{ count }\n")
    with pytest.raises(ConfigError, match=r"subject_template: template .*subject\.j2: line 1"):
        configure(tmp_path, monkeypatch, body(2525, "none", ", subject_template: subject.j2"))


# -- delivery ----------------------------------------------------------------------------------


def test_subject_both_bodies_and_recipients_batched(lake, landing, tmp_path, monkeypatch):
    event = make_event(item_id="9", scope="FeatureFlag", created_at="2024-01-15T09:00:00Z", detail={
        "name": "<b>bold</b>", "changes": [{"field": "active", "before": False, "after": True}]})
    add_events(lake, landing, [flag_event(15, item_id=str(i)) for i in range(2)] + [event], "a.jsonl")
    with SmtpServer() as server:
        notifications = configure(tmp_path, monkeypatch, body(server.port))
        report = notify_days(lake, notifications, [DAY], now=NOW, policy=FAST)
        again = notify_days(lake, notifications, [DAY], now=NOW, policy=FAST)
        messages = list(server.messages)
    assert report.counts["flags"]["sent"] == 3 and again.counts["flags"]["sent"] == 0
    assert len(messages) == 2  # batch_size 2: events 9:00 and 10:00 together, then the last one
    first, second = messages
    assert first["Subject"] == "flags: 2 events"
    assert second["Subject"] in {f'Jane Doe changed feature flag "flag-{i}": active false → true' for i in (0, 1)}
    assert first.envelope_from == "activitylog@example.com"
    assert first.envelope_to == ["ops@example.com", "audit@example.com"]
    assert first["To"] == "ops@example.com, audit@example.com"
    text, html = parts(first)
    assert 'changed feature flag "<b>bold</b>"' in text and "  - active: false -> true" in text
    assert "http://posthog.local/project/1/feature_flags/9" in text
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html  # values escaped in HTML
    htmls = html + parts(second)[1]
    assert '<a href="http://posthog.local/project/1/feature_flags/0">open flag-0</a>' in htmls
    ids = {m["Message-ID"] for m in messages}
    assert len(ids) == 2 and all(i.endswith("@example.com>") for i in ids)
    assert statuses(lake) == {"sent": 3}


def test_a_4xx_reply_is_retried_and_delivered_once(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(15)], "a.jsonl")
    with SmtpServer() as server:
        server.replies("451 4.3.0 Try again later")
        notifications = configure(tmp_path, monkeypatch, body(server.port))
        report = notify_days(lake, notifications, [DAY], now=NOW, policy=FAST)
        again = notify_days(lake, notifications, [DAY], now=NOW, policy=FAST)
        assert server.attempts == 2 and len(server.messages) == 1
    assert report.counts["flags"]["sent"] == 1 and again.counts["flags"]["already"] == 1
    state = ledger_state(lake).row(0, named=True)
    assert (state["status"], state["attempts"]) == ("sent", 2)


def test_a_5xx_reply_is_recorded_with_its_reason_and_retry_failed_sends_once(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(15)], "a.jsonl")
    with SmtpServer() as server:
        server.replies("554 5.7.1 Message rejected by policy")
        notifications = configure(tmp_path, monkeypatch, body(server.port))
        report = notify_days(lake, notifications, [DAY], now=NOW, policy=FAST)
        assert server.attempts == 1 and not server.messages  # a 5xx is not retried
        assert report.failed == 1
        failed = ledger_state(lake).row(0, named=True)
        assert failed["status"] == "failed"
        assert f"SMTP 127.0.0.1:{server.port} answered 554 5.7.1 Message rejected by policy" in failed["error"]
        again = notify_days(lake, notifications, [DAY], now=NOW, policy=FAST)
        assert again.counts["flags"]["already"] == 1 and server.attempts == 1  # not resent by a normal pass
        retried = retry_failed(lake, notifications, policy=FAST)
        assert retried.counts["flags"]["sent"] == 1 and len(server.messages) == 1
    assert statuses(lake) == {"sent": 1}


def test_4xx_until_gave_up_is_a_dead_letter_with_the_reply(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(15)], "a.jsonl")
    with SmtpServer() as server:
        server.replies(*["421 4.7.0 Too busy"] * 3)
        notifications = configure(tmp_path, monkeypatch, body(server.port))
        report = notify_days(lake, notifications, [DAY], now=NOW, policy=FAST)
        assert server.attempts == 3 and not server.messages
    assert report.failed == 1
    error = ledger_state(lake)["error"][0]
    assert "421 4.7.0 Too busy" in error and "gave up after 3 attempts" in error


def test_an_unreachable_server_is_a_dead_letter_naming_it(lake, landing, tmp_path, monkeypatch):
    from tests.helpers.servers import free_port

    add_events(lake, landing, [flag_event(15)], "a.jsonl")
    port = free_port()
    notifications = configure(tmp_path, monkeypatch, body(port))
    report = notify_days(lake, notifications, [DAY], now=NOW, policy=FAST)
    assert report.failed == 1
    assert f"SMTP 127.0.0.1:{port} unreachable (ConnectionRefusedError" in ledger_state(lake)["error"][0]


# -- TLS and authentication --------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path):
    return self_signed_certificate(tmp_path)


def tls_body(port, security, cert, extra=AUTH):
    return body(port, security, f", ca_file: {cert}{extra}").replace("host: 127.0.0.1", "host: localhost")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # implicit TLS: aiosmtpd sees no STARTTLS
@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_with_a_self_signed_certificate_and_login(lake, landing, tmp_path, monkeypatch, certificate, security):
    add_events(lake, landing, [flag_event(15)], "a.jsonl")
    cert, key = certificate
    with SmtpServer(tls_context=server_tls_context(cert, key), implicit_tls=security == "tls",
                    credentials=("ops", "s3cret"), require_starttls=True) as server:
        notifications = configure(tmp_path, monkeypatch, tls_body(server.port, security, cert),
                                  SMTP_USER="ops", SMTP_PASSWORD="s3cret")
        report = notify_days(lake, notifications, [DAY], now=NOW, policy=FAST)
        assert report.counts["flags"]["sent"] == 1, report.errors
        assert server.logins == ["ops"] and len(server.messages) == 1


def test_an_untrusted_certificate_sends_nothing(lake, landing, tmp_path, monkeypatch, certificate):
    add_events(lake, landing, [flag_event(15)], "a.jsonl")
    cert, key = certificate
    with SmtpServer(tls_context=server_tls_context(cert, key), require_starttls=True) as server:
        notifications = configure(tmp_path, monkeypatch, body(server.port, "starttls").replace(
            "host: 127.0.0.1", "host: localhost"))
        report = notify_days(lake, notifications, [DAY], now=NOW, policy=FAST)
        assert not server.messages and server.attempts == 0
    assert report.failed == 1
    error = ledger_state(lake)["error"][0]
    assert "TLS failed (CERTIFICATE_VERIFY_FAILED)" in error


def test_starttls_required_but_not_offered_sends_nothing(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, [flag_event(15)], "a.jsonl")
    with SmtpServer() as server:
        notifications = configure(tmp_path, monkeypatch, body(server.port, "starttls"))
        report = notify_days(lake, notifications, [DAY], now=NOW, policy=FAST)
        assert not server.messages
    assert report.failed == 1
    assert "does not offer STARTTLS (security: starttls); nothing sent" in ledger_state(lake)["error"][0]


def test_a_wrong_password_is_refused_with_the_reply_and_never_shown(lake, landing, tmp_path, monkeypatch, certificate):
    add_events(lake, landing, [flag_event(15)], "a.jsonl")
    cert, key = certificate
    with SmtpServer(tls_context=server_tls_context(cert, key), credentials=("ops", "s3cret"),
                    require_starttls=True) as server:
        notifications = configure(tmp_path, monkeypatch, tls_body(server.port, "starttls", cert),
                                  SMTP_USER="ops", SMTP_PASSWORD="wrong-pass")
        report = notify_days(lake, notifications, [DAY], now=NOW, policy=FAST)
        assert not server.messages and not server.logins
    assert report.failed == 1
    error = ledger_state(lake)["error"][0]
    assert "refused the login: 535" in error and "wrong-pass" not in error


# -- the message -------------------------------------------------------------------------------


TEXT = st.characters(blacklist_categories=("Cs",))


@settings(max_examples=60, deadline=None)
@given(subject=st.text(TEXT, max_size=200), text=st.text(TEXT, max_size=300), html=st.text(TEXT, max_size=300))
def test_any_text_makes_a_one_line_subject_and_survives_the_round_trip(subject, text, html):
    message = build_message("a@example.com", ["b@example.com"], subject, text, html, "<id@example.com>")
    parsed = message_from_bytes(message.as_bytes(), policy=default)
    assert parsed["Subject"] == " ".join(subject.split())
    # the bodies come back with their text intact (line endings are the transport's: compare without whitespace)
    assert "".join(parsed.get_body(("plain",)).get_content().split()) == "".join(text.split())
    assert "".join(parsed.get_body(("html",)).get_content().split()) == "".join(html.split())
    assert set(parsed.keys()) == {"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"}
