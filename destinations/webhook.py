"""Generic webhook: one JSON POST per event, signed per the Standard Webhooks spec.

Headers: ``webhook-id`` (the delivery id: the same event to the same route always has the same id, so
a resend after a crash is recognisable), ``webhook-timestamp`` (seconds), ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, computed by the spec's reference library).
"""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
from standardwebhooks.webhooks import Webhook

from destinations.delivery import RetryPolicy, post
from transforms import jsontext


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
        body = jsontext.encode(payload)  # nested JSON texts (detail) embedded exactly

        def request() -> dict:
            # A fresh timestamp (and signature) per attempt: receivers reject stale timestamps.
            headers = {"content-type": "application/json", **signature_headers(self.secret, webhook_id, body)}
            return {"url": self.url, "content": body.encode(), "headers": headers}

        return post(self._http, self.policy, "webhook", request)
