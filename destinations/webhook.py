"""Generic webhook: one JSON POST per event, signed per the Standard Webhooks spec.

Headers: ``webhook-id`` (the delivery id: the same event to the same route always has the same id, so
a resend after a crash is recognisable), ``webhook-timestamp`` (seconds), ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, computed by the spec's reference library).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import httpx
from standardwebhooks.webhooks import Webhook

from destinations.delivery import DeliveryFailed, RetryPolicy, retry_after_seconds


def signature_headers(secret: str | None, webhook_id: str, body: str, moment: datetime | None = None) -> dict[str, str]:
    moment = moment or datetime.now(timezone.utc)
    headers = {"webhook-id": webhook_id, "webhook-timestamp": str(int(moment.timestamp()))}
    if secret:
        headers["webhook-signature"] = Webhook(secret).sign(webhook_id, moment, body)
    return headers


class WebhookClient:
    def __init__(self, url: str, *, secret: str | None = None, timeout: float = 10.0,
                 policy: RetryPolicy = RetryPolicy()) -> None:
        self.url = url
        self.secret = secret
        self.policy = policy
        self._http = httpx.Client(timeout=timeout, follow_redirects=False,
                                  headers={"user-agent": "activitylog-webhook/1"})

    def close(self) -> None:
        self._http.close()

    def send(self, webhook_id: str, payload: dict) -> int:
        """POST the payload; returns the number of attempts. Raises :class:`DeliveryFailed`."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)

        def attempt() -> None:
            # A fresh timestamp (and signature) per attempt: receivers reject stale timestamps.
            headers = {"content-type": "application/json", **signature_headers(self.secret, webhook_id, body)}
            try:
                response = self._http.post(self.url, content=body.encode(), headers=headers)
            except httpx.TimeoutException as exc:
                raise DeliveryFailed(f"webhook timed out ({type(exc).__name__})", retryable=True) from None
            except httpx.TransportError as exc:
                raise DeliveryFailed(f"webhook unreachable ({type(exc).__name__}: {exc})", retryable=True) from None
            status = response.status_code
            if 200 <= status < 300:
                return
            text = response.text[:200].strip()
            if status == 410:
                raise DeliveryFailed(f"webhook answered 410 Gone: {text}", permanent=True)
            if status == 429 or status >= 500:
                raise DeliveryFailed(f"webhook answered {status}: {text}", retryable=True,
                                     retry_after=retry_after_seconds(response.headers.get("retry-after")))
            raise DeliveryFailed(f"webhook answered {status}: {text}")

        attempts = 0

        def counted() -> None:
            nonlocal attempts
            attempts += 1
            attempt()

        self.policy.call(counted, "webhook")
        return attempts
