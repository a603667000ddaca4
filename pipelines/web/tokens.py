"""Viewer tokens: short-lived, signed links to the page of one project or one organization.

    alv1.<payload>.<signature>      payload: base64url JSON {"org", "project", "exp", "iss", "jti"}
                                    signature: base64url HMAC-SHA256(secret, "alv1." + payload)

The expiry is inside the signed payload, so a token needs no server-side record; the secret lives in a
file outside the lake (``ACTIVITYLOG_PAGE_SECRET_FILE``, default ``~/.config/activitylog/page.secret``,
created with mode 0600 on first use). ``iss`` names the admin key that minted the token through the API
(``cli`` for ``activitylog keys viewer-token``): revoking that key ends its tokens at the next request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PREFIX = "alv1"
SECRET_FILE_ENV = "ACTIVITYLOG_PAGE_SECRET_FILE"
MAX_TTL = 24 * 3600           # a viewer token lives at most a day
MAX_TOKEN = 2_000             # characters of a presented token
CLI_ISSUER = "cli"
_TTL = re.compile(r"^\s*(\d{1,7})\s*(s|m|h|d)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class TokenError(ValueError):
    """A token that cannot be used; the message says why (it is shown to whoever presented it)."""


@dataclass(frozen=True)
class ViewerClaims:
    organization_id: str
    project_id: int | None   # None: the whole organization
    expires_at: int          # Unix seconds
    issuer: str              # the key id that minted it, or "cli"
    token_id: str


def parse_ttl(text: str) -> int:
    """``15m``, ``2h``, ``900s``, ``1d`` → seconds (1 s to :data:`MAX_TTL`); else :class:`ValueError`."""
    match = _TTL.match(text or "")
    if not match:
        raise ValueError(f"{str(text)[:40]!r} is not a duration like 900s, 15m, 2h or 1d")
    seconds = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if not 1 <= seconds <= MAX_TTL:
        raise ValueError(f"a viewer token lives between 1 second and {MAX_TTL // 3600} hours, not {text.strip()}")
    return seconds


def secret_path() -> Path:
    configured = os.environ.get(SECRET_FILE_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "activitylog" / "page.secret"


def load_secret(path: Path | None = None) -> bytes:
    """The signing secret (32 random bytes, hex in the file), created on first use with mode 0600."""
    path = path or secret_path()
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            text = path.read_text().strip()
        else:
            text = secrets.token_hex(32)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(text + "\n")
    if len(text) < 32:
        raise TokenError(f"the page secret in {path} is too short (at least 32 characters)")
    return text.encode()


class Secret:
    """The signing secret, read (or made) at its first use: a server that never sees a viewer token
    never touches the file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path, self._value = path, None
        self._lock = threading.Lock()

    def get(self) -> bytes:
        with self._lock:
            if self._value is None:
                self._value = load_secret(self.path)
            return self._value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, signed: str) -> str:
    return _b64(hmac.new(secret, signed.encode(), hashlib.sha256).digest())


def mint(secret: bytes, organization_id: str, project_id: int | None, ttl_seconds: int, issuer: str,
         now: float | None = None) -> tuple[str, int]:
    """(token, expiry in Unix seconds)."""
    if not organization_id:
        raise ValueError("a viewer token belongs to an organization")
    if not 1 <= ttl_seconds <= MAX_TTL:
        raise ValueError(f"a viewer token lives between 1 second and {MAX_TTL} seconds")
    expires = int(now if now is not None else time.time()) + ttl_seconds
    payload = _b64(json.dumps({"org": organization_id, "project": project_id, "exp": expires, "iss": issuer,
                               "jti": secrets.token_hex(8)}, separators=(",", ":")).encode())
    signed = f"{PREFIX}.{payload}"
    return f"{signed}.{_sign(secret, signed)}", expires


def verify(secret: bytes, token: str, now: float | None = None) -> ViewerClaims:
    """The claims of a valid, unexpired token; else :class:`TokenError` saying why."""
    if not token or len(token) > MAX_TOKEN:
        raise TokenError("not a viewer token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenError("not a viewer token")
    if not hmac.compare_digest(_sign(secret, f"{parts[0]}.{parts[1]}"), parts[2]):
        raise TokenError("the viewer token's signature does not match (altered, or signed with another secret)")
    try:
        claims = json.loads(_unb64(parts[1]))
        organization, project, expires = claims["org"], claims["project"], claims["exp"]
        issuer, token_id = claims["iss"], claims["jti"]
    except (ValueError, KeyError, TypeError):
        raise TokenError("not a viewer token") from None
    if (not isinstance(organization, str) or not isinstance(expires, int) or not isinstance(issuer, str)
            or not (project is None or (isinstance(project, int) and not isinstance(project, bool)))):
        raise TokenError("not a viewer token")
    if expires <= (now if now is not None else time.time()):
        raise TokenError("the viewer token has expired")
    return ViewerClaims(organization, project, expires, issuer, str(token_id))


def issue(lake, project_id: int | None, organization_id: str | None, ttl: str,
          secret_file: Path | None = None) -> tuple[str, ViewerClaims]:
    """A token signed by the operator (``activitylog keys viewer-token``): for ``project_id`` (its
    organization from the lake when not given) or, without a project, for ``organization_id`` as a
    whole. The organization and project are checked as ``keys create`` checks them: a token never
    names another organization's project. :class:`ValueError` says what is wrong."""
    from transforms.keys import check_key_scope, tenants

    seconds = parse_ttl(ttl)
    if project_id is None and not organization_id:
        raise ValueError("a viewer token is for a project (--project ID) or an organization (--organization ORG)")
    if project_id is not None and not organization_id:
        owners = tenants(lake).project_organizations.get(project_id)
        if owners is None:
            raise ValueError(f"project {project_id} is unknown: it is neither in the reference projects nor in "
                             "any event")
        if len(owners) != 1:
            raise ValueError(f"project {project_id} belongs to {', '.join(sorted(owners)) or 'no known organization'}: "
                             "name it with --organization")
        organization_id = next(iter(owners))
    check_key_scope(lake, organization_id, [project_id] if project_id is not None else [])
    token, _ = mint(load_secret(secret_file), organization_id, project_id, seconds, issuer=CLI_ISSUER)
    return token, verify(load_secret(secret_file), token)
