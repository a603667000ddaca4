"""What every destination client shares: the failure type and the retry policy.

Retries use tenacity: exponential backoff with full jitter on timeouts, connection errors, HTTP 429
and 5xx; a 429's ``Retry-After`` is honoured instead of the backoff. Other 4xx are not retried. A
permanent error (404/410 from Slack, 410 from a webhook) disables the destination.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential


class DeliveryFailed(Exception):
    """A message could not be delivered. ``permanent``: the destination is gone (disable it)."""

    def __init__(self, message: str, *, attempts: int = 1, permanent: bool = False, retryable: bool = False,
                 retry_after: float | None = None):
        super().__init__(message)
        self.attempts = attempts
        self.permanent = permanent
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_base: float = 0.5   # seconds; the n-th wait is random in [0, base * 2^n], capped
    backoff_cap: float = 30.0
    max_retry_after: float = 120.0  # a longer Retry-After is waited this long at most

    def call(self, send, describe: str):
        """Run ``send()`` with retries; return its result or raise :class:`DeliveryFailed` (attempts set)."""
        backoff = wait_random_exponential(multiplier=self.backoff_base, max=self.backoff_cap)

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, DeliveryFailed) and error.retry_after is not None:
                return min(error.retry_after, self.max_retry_after)
            return backoff(state)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts), wait=wait, reraise=True,
            retry=retry_if_exception(lambda e: isinstance(e, DeliveryFailed) and e.retryable),
            sleep=time.sleep,
        )
        attempts = 0
        try:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    return send()
        except DeliveryFailed as exc:
            exc.attempts = attempts
            if exc.retryable:
                exc.args = (f"{exc.args[0]} (gave up after {attempts} attempts)",)
            raise
        raise DeliveryFailed(f"{describe}: no attempt made")  # pragma: no cover - max_attempts >= 1


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (a number of seconds, or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime
    from datetime import datetime, timezone

    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())


def post(client, policy: RetryPolicy, what: str, request, permanent: frozenset[int] = frozenset({410})) -> int:
    """POST with retries through an ``httpx.Client``; ``request()`` gives the keyword arguments of each
    attempt (built again per attempt: a signature may carry a timestamp). Returns the attempts made;
    raises :class:`DeliveryFailed` (``permanent`` for the statuses that mean the destination is gone)."""
    import httpx

    attempts = 0

    def attempt() -> None:
        nonlocal attempts
        attempts += 1
        try:
            response = client.post(**request())
        except httpx.TimeoutException as exc:
            raise DeliveryFailed(f"{what} timed out ({type(exc).__name__})", retryable=True) from None
        except httpx.TransportError as exc:
            raise DeliveryFailed(f"{what} unreachable ({type(exc).__name__}: {exc})", retryable=True) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        text = response.text[:200].strip()
        label = "410 Gone" if status == 410 else str(status)
        if status in permanent:
            raise DeliveryFailed(f"{what} answered {label}: {text}", permanent=True)
        if status == 429 or status >= 500:
            raise DeliveryFailed(f"{what} answered {label}: {text}", retryable=True,
                                 retry_after=retry_after_seconds(response.headers.get("retry-after")))
        raise DeliveryFailed(f"{what} answered {label}: {text}")

    policy.call(attempt, what)
    return attempts
