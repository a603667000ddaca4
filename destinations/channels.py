"""The kinds of notification destination, one :class:`Channel` each, in one registry.

A channel knows, for its kind of destination, the address that identifies it (a new address enables a
disabled destination again), how to open its client, how many deliveries go in one message, and how to
send one message. The registry is keyed by the configuration's ``type`` discriminator (``slack``,
``webhook``, ``email``, ``file``): adding a kind of destination is a client module, a channel here and a
configuration model with that ``type``.
"""

from __future__ import annotations

from typing import Any, Protocol

from destinations.delivery import RetryPolicy
from destinations.email import EmailClient
from destinations.files import FileClient
from destinations.payloads import event_record, template_context
from destinations.slack import SlackClient
from destinations.templates import (
    DEFAULT_EMAIL_HTML, DEFAULT_EMAIL_SUBJECT, DEFAULT_EMAIL_TEXT, load_template, render,
)
from destinations.webhook import WebhookClient
from transforms.notify import now_utc


class Channel(Protocol):
    def address(self, spec: Any, where: str) -> str | None:
        """What identifies the destination (its URL, server and recipients, or path)."""

    def open(self, spec: Any, where: str, policy: RetryPolicy) -> Any:
        """A client for the destination; closed with ``close()`` at the end of the pass."""

    def batch_size(self, spec: Any) -> int:
        """How many deliveries one message carries."""

    def send(self, client: Any, spec: Any, destination: str, subscription: str, template_path: str | None,
             ids: list[str], rows: list[dict[str, Any]]) -> int:
        """Send one message of ``rows`` (delivery ``ids``); returns the attempts it took."""


def _secret(ref, where: str) -> str | None:
    return ref.value(where) if ref is not None else None


class SlackChannel:
    def address(self, spec, where):
        return spec.webhook_url.value(f"{where}.webhook_url")

    def open(self, spec, where, policy):
        return SlackClient(self.address(spec, where), timeout=spec.timeout, min_interval=spec.min_interval,
                           policy=policy)

    def batch_size(self, spec):
        return getattr(spec, "batch_size", 1)

    def send(self, client, spec, destination, subscription, template_path, ids, rows):
        template, name = load_template(template_path)
        texts = [render(template, name, template_context(r, subscription, spec.link_template)) for r in rows]
        header = f"*{subscription}* · {len(rows)} event{'s' if len(rows) != 1 else ''}"
        fallback = rows[0].get("summary") or subscription if len(rows) == 1 else f"{subscription}: {len(rows)} events"
        return client.send(texts, header, fallback)


class WebhookChannel:
    def address(self, spec, where):
        return spec.url.value(f"{where}.url")

    def open(self, spec, where, policy):
        return WebhookClient(self.address(spec, where), secret=_secret(spec.secret, f"{where}.secret"),
                             timeout=spec.timeout, policy=policy)

    def batch_size(self, spec):
        return 1  # one event per request: the delivery id is the request's webhook-id

    def send(self, client, spec, destination, subscription, template_path, ids, rows):
        payload = {"type": "activity_log.entry", "timestamp": now_utc().isoformat().replace("+00:00", "Z"),
                   "subscription": subscription, "delivery_id": ids[0], "data": event_record(rows[0])}
        return client.send(ids[0], payload)


class EmailChannel:
    def address(self, spec, where):
        return f"smtp://{spec.host}:{spec.effective_port}/{','.join(spec.to)}"

    def open(self, spec, where, policy):
        return EmailClient(spec.host, spec.effective_port, security=spec.security,
                           username=_secret(spec.username, f"{where}.username"),
                           password=_secret(spec.password, f"{where}.password"), ca_file=spec.ca_file,
                           sender=spec.sender, to=spec.to, timeout=spec.timeout, policy=policy)

    def batch_size(self, spec):
        return getattr(spec, "batch_size", 1)

    def send(self, client, spec, destination, subscription, template_path, ids, rows):
        contexts = [template_context(r, subscription, spec.link_template) for r in rows]
        context = {"events": contexts, "count": len(rows), "subscription": subscription}
        subject = render(*load_template(spec.subject_template, DEFAULT_EMAIL_SUBJECT, default_name="default subject"),
                         context)
        text = render(*load_template(spec.text_template, DEFAULT_EMAIL_TEXT, default_name="default text"), context)
        html = render(*load_template(spec.html_template, DEFAULT_EMAIL_HTML, html=True, default_name="default html"),
                      context)
        return client.send(subject, text + "\n", html, ids[0])


class FileChannel:
    def address(self, spec, where):
        return spec.path

    def open(self, spec, where, policy):
        return FileClient(spec.path)

    def batch_size(self, spec):
        return 100

    def send(self, client, spec, destination, subscription, template_path, ids, rows):
        return client.send([{"delivery_id": d, "subscription": subscription, "destination": destination,
                             "event": event_record(r)} for d, r in zip(ids, rows)])


CHANNELS: dict[str, Channel] = {
    "slack": SlackChannel(),
    "webhook": WebhookChannel(),
    "email": EmailChannel(),
    "file": FileChannel(),
}


def channel_for(spec: Any) -> Channel:
    """The channel of a configured destination (its model's ``type``)."""
    try:
        return CHANNELS[spec.type]
    except KeyError:
        raise ValueError(f"no channel for destinations of type {spec.type!r}") from None
