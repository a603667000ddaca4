"""Sessions of the page, and what resolves a page request to its key (``app.state.page_keys``).

A session is made when an API key is pasted into the sign-in form: a random id (the cookie's value,
HttpOnly, SameSite=Strict, Secure behind an https public URL), kept server-side with the key's *id*,
never the key. Only SHA-256 of the id is held, so the table of sessions cannot be replayed as cookies.
A session ends on sign-out, after ``ACTIVITYLOG_SESSION_TTL`` without a request (default 8h: a number of
seconds or 30m, 8h, 1d), or at the first request after its key is revoked. Each session has its CSRF
token, compared in constant time on every POST. Sessions live in the server process: a restart, or a
request to another ``--workers`` process, asks for the key again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass, field

from fastapi import Request

from pipelines.api.deps import ApiError
from pipelines.web import tokens
from transforms.keys import READ_SCOPE, ApiKey, list_keys
from transforms.lake import Lake

COOKIE = "alp_session"
SIGNIN_COOKIE = "alp_signin"     # the sign-in form's double-submit CSRF value (before any session)
TTL_ENV = "ACTIVITYLOG_SESSION_TTL"
DEFAULT_TTL = 8 * 3600
MAX_SESSIONS = 100_000


def session_ttl(text: str | None) -> int:
    """``ACTIVITYLOG_SESSION_TTL``: seconds (``28800``) or a duration (``30m``, ``8h``, ``1d``)."""
    if not text:
        return DEFAULT_TTL
    if re.fullmatch(r"\s*\d{1,9}\s*", text):
        seconds = int(text)
    else:
        match = re.fullmatch(r"\s*(\d{1,7})\s*(s|m|h|d)\s*", text, re.IGNORECASE)
        if not match:
            raise ValueError(f"{TTL_ENV}: {text[:40]!r} is not a number of seconds or a duration like 30m, 8h, 1d")
        seconds = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2).lower()]
    if seconds < 1:
        raise ValueError(f"{TTL_ENV}: must be at least one second")
    return seconds


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass
class Session:
    key_id: str
    csrf: str
    last_seen: float = field(default_factory=time.monotonic)


class SessionStore:
    def __init__(self, ttl: int) -> None:
        self.ttl = ttl
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, key_id: str) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        session = Session(key_id=key_id, csrf=secrets.token_urlsafe(32))
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._expire()
                if len(self._sessions) >= MAX_SESSIONS:  # the oldest idle one goes
                    oldest = min(self._sessions, key=lambda k: self._sessions[k].last_seen)
                    del self._sessions[oldest]
            self._sessions[_digest(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session (its idle clock restarted), or None: unknown or idle too long (then gone)."""
        if not session_id or len(session_id) > 200:
            return None
        digest, now = _digest(session_id), time.monotonic()
        with self._lock:
            session = self._sessions.get(digest)
            if session is None:
                return None
            if now - session.last_seen > self.ttl:
                del self._sessions[digest]
                return None
            session.last_seen = now
            return session

    def delete(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(_digest(session_id), None)

    def end_key(self, key_id: str) -> None:
        """Every session of a key (it was revoked)."""
        with self._lock:
            for digest in [d for d, s in self._sessions.items() if s.key_id == key_id]:
                del self._sessions[digest]

    def _expire(self) -> None:
        now = time.monotonic()
        for digest in [d for d, s in self._sessions.items() if now - s.last_seen > self.ttl]:
            del self._sessions[digest]

    def __len__(self) -> int:
        return len(self._sessions)


def csrf_matches(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(expected.encode(), given.encode())


def signing_secret(secret: tokens.Secret) -> bytes:
    """The viewer tokens' secret, or a 503 naming the file when it cannot be read or made."""
    try:
        return secret.get()
    except (OSError, tokens.TokenError) as exc:
        raise ApiError(503, f"viewer tokens are unavailable: the page secret cannot be read ({exc})") from None


class SignInRequired(ApiError):
    """No session (or it ended): a page answers with the sign-in form."""

    def __init__(self, detail: str = "sign in with an API key") -> None:
        super().__init__(401, detail)


@dataclass(frozen=True)
class PageIdentity:
    key: ApiKey
    session_id: str | None = None    # a signed-in browser
    session: Session | None = None
    token: str | None = None         # ?token=: a viewer token (no session, no POST)


def viewer_key(claims: tokens.ViewerClaims) -> ApiKey:
    """The key a viewer token stands for: read-only, its one project (or its organization)."""
    from datetime import datetime, timezone

    return ApiKey(key_id=f"viewer-{claims.token_id}", organization_id=claims.organization_id,
                  projects=(claims.project_id,) if claims.project_id is not None else (),
                  admin=claims.project_id is None, scopes=(READ_SCOPE,), label="viewer token",
                  created_at=datetime.now(timezone.utc), revoked_at=None)


class PageKeys:
    """Resolves a page request to (its key, the path parameters the access rule reads)."""

    def __init__(self, lake: Lake, store: SessionStore, secret: tokens.Secret) -> None:
        self.lake, self.store, self.secret = lake, store, secret

    def active_key(self, key_id: str) -> ApiKey | None:
        key = next((k for k in list_keys(self.lake) if k.key_id == key_id), None)
        return key if key is not None and key.revoked_at is None else None

    def identify(self, request: Request) -> PageIdentity:
        token = request.query_params.get("token")
        if token is not None:
            try:
                claims = tokens.verify(signing_secret(self.secret), token)
            except tokens.TokenError as exc:
                raise ApiError(401, str(exc)) from None
            if claims.issuer != tokens.CLI_ISSUER and self.active_key(claims.issuer) is None:
                raise ApiError(401, "the key that made this viewer token was revoked")
            return PageIdentity(key=viewer_key(claims), token=token)
        session_id = request.cookies.get(COOKIE)
        session = self.store.get(session_id)
        if session is None:
            raise SignInRequired("sign in with an API key" if not session_id else "the session ended: sign in again")
        key = self.active_key(session.key_id)
        if key is None:
            self.store.end_key(session.key_id)
            raise SignInRequired("the key of this session was revoked: sign in with another key")
        return PageIdentity(key=key, session_id=session_id, session=session)

    def resolve(self, request: Request) -> tuple[ApiKey, dict[str, str]]:
        identity = self.identify(request)
        request.state.page_identity = identity
        key = identity.key
        asked = request.query_params.get("project")
        if identity.token is not None:  # a token shows its own project or organization, whatever is asked
            if key.projects:
                if asked not in (None, "", str(key.projects[0])):
                    raise ApiError(404, "not found")
                return key, {"project_id": str(key.projects[0])}
            return key, {"org_id": key.organization_id}
        if asked:
            return key, {"project_id": asked}
        if key.admin:
            return key, {"org_id": key.organization_id}
        return key, {"project_id": str(key.projects[0])}
