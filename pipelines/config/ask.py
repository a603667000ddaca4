"""``ask: {model: {url, model, api_key: {env: NAME}, timeout}}``: an optional OpenAI-compatible endpoint
that proposes the filter of a question in plain language (default: none, the deterministic parser)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import field_validator

from .base import Section, fail, kind_of
from .secrets import SecretRef

__all__ = ["AskConfig", "AskModelConfig"]


class AskModelConfig(Section):
    """``url``: the API's base (``https://api.example/v1``; ``/chat/completions`` is added), ``model``:
    the model's name, ``api_key``: ``{env: NAME}`` (sent as ``Authorization: Bearer``), ``timeout``:
    seconds (default 20)."""

    url: str
    model: str
    api_key: SecretRef | None = None
    timeout: float = 20.0

    @field_validator("url", mode="plain")
    @classmethod
    def _url(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise fail(f"must be an http(s) URL, not {kind_of(value)}")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise fail(f"must be an http(s) URL like https://api.example/v1, not {value!r}")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise fail("must not carry credentials, a query or a fragment: give the key as api_key: {env: NAME}")
        return value.rstrip("/")

    @field_validator("model", mode="plain")
    @classmethod
    def _model(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise fail("must be the model's name")
        return value

    @field_validator("timeout", mode="plain")
    @classmethod
    def _timeout(cls, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 300:
            raise fail("must be a number of seconds between 0 and 300")
        return float(value)


class AskConfig(Section):
    """``ask: {model: …}``; without ``model`` questions are read by the deterministic parser only."""

    model: AskModelConfig | None = None
