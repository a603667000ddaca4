"""Signing digests (HMAC-SHA256 or Ed25519, the key from the environment) and checking a row's signature."""

from __future__ import annotations

import hashlib
import hmac
import os

HMAC_ENV = "ACTIVITYLOG_DIGEST_HMAC_KEY"
ED25519_ENV = "ACTIVITYLOG_DIGEST_ED25519_KEY"


def _sign(digest: str) -> tuple[str | None, str]:
    if os.environ.get(ED25519_ENV):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        key = load_pem_private_key(os.environ[ED25519_ENV].encode(), password=None)
        return key.sign(digest.encode()).hex(), "ed25519"
    if os.environ.get(HMAC_ENV):
        return hmac.new(os.environ[HMAC_ENV].encode(), digest.encode(), hashlib.sha256).hexdigest(), "hmac-sha256"
    return None, "none"


def _signature_problem(row: dict) -> str | None:
    kind, signature = row["signature_kind"], row["signature"]
    if kind == "none":
        return None
    if kind == "hmac-sha256":
        key = os.environ.get(HMAC_ENV)
        if not key:
            return None  # cannot check without the key; the chain is still checked
        expected = hmac.new(key.encode(), row["digest"].encode(), hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(expected, signature or "") else "signature does not match (HMAC)"
    if kind == "ed25519":
        pem = os.environ.get(ED25519_ENV)
        if not pem:
            return None
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            load_pem_private_key(pem.encode(), password=None).public_key().verify(
                bytes.fromhex(signature or ""), row["digest"].encode())
        except (InvalidSignature, ValueError):
            return "signature does not match (Ed25519)"
        return None
    return f"unknown signature kind {kind!r}"
