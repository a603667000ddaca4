"""Slack incoming webhooks through ``slack_sdk``'s ``WebhookClient``: Block Kit messages, one per batch
of events of one subscription, at most one message per ``min_interval`` seconds per webhook.

429 waits for ``Retry-After``; 5xx, timeouts and connection errors are retried with backoff; 404 and
410 (``channel_not_found``, ``channel_is_archived``, ``no_service``) are permanent: the destination is
disabled until its URL changes.
"""

from __future__ import annotations

import time
import urllib.error
from typing import Sequence

from slack_sdk.webhook import WebhookClient

from destinations.delivery import DeliveryFailed, RetryPolicy, retry_after_seconds

PERMANENT_ERRORS = ("channel_not_found", "channel_is_archived", "no_service", "no_team", "team_disabled")
MAX_SECTION_CHARS = 3000  # Slack's limit for a section's text


def blocks_for(texts: Sequence[str], header: str) -> list[dict]:
    blocks: list[dict] = [{"type": "context", "elements": [{"type": "mrkdwn", "text": header}]}]
    for position, text in enumerate(texts):
        if position:
            blocks.append({"type": "divider"})
        shown = text if len(text) <= MAX_SECTION_CHARS else text[: MAX_SECTION_CHARS - 1] + "…"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": shown}})
    return blocks


class SlackClient:
    def __init__(self, webhook_url: str, *, timeout: float = 10.0, min_interval: float = 1.0,
                 policy: RetryPolicy = RetryPolicy()) -> None:
        # slack_sdk's own retry handlers are off: the policy below decides (Retry-After, backoff, give up).
        self._client = WebhookClient(webhook_url, timeout=int(max(1, timeout)), retry_handlers=[])
        self.min_interval = min_interval
        self.policy = policy
        self._last_sent = 0.0

    def close(self) -> None:
        pass

    def send(self, texts: Sequence[str], header: str, fallback: str) -> int:
        """Send one message; returns the attempts it took. Raises :class:`DeliveryFailed`."""
        blocks = blocks_for(texts, header)
        attempts = 0

        def attempt() -> None:
            nonlocal attempts
            attempts += 1
            wait = self._last_sent + self.min_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                response = self._client.send(text=fallback, blocks=blocks)
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                raise DeliveryFailed(f"Slack unreachable ({type(exc).__name__}: {exc})", retryable=True) from None
            finally:
                self._last_sent = time.monotonic()
            status, body = response.status_code, (response.body or "").strip()
            if status == 200:
                return
            if status in (404, 410) or body in PERMANENT_ERRORS:
                raise DeliveryFailed(f"Slack answered {status} {body}", permanent=True)
            if status == 429 or status >= 500:
                raise DeliveryFailed(f"Slack answered {status} {body}", retryable=True,
                                     retry_after=retry_after_seconds(_header(response.headers, "retry-after")))
            raise DeliveryFailed(f"Slack answered {status} {body}")

        self.policy.call(attempt, "Slack")
        return attempts


def _header(headers: dict | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value[0] if isinstance(value, list) else value
    return None
