"""``reference: {users, projects, organizations}``: enrichment tables, each a local path or an s3:// URI."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationInfo, field_validator

from .base import Section, fail, require_text

__all__ = ["ReferenceConfig"]

_REFERENCE_HINT = "must be a local path or an s3:// URI"


class ReferenceConfig(Section):
    """``reference: {users, projects, organizations}``: enrichment tables, each a path or s3:// URI.

    Relative local paths are resolved against the config file's directory (the working directory
    when validated without a file) and stored absolute; they must exist (file or directory).
    """

    users: str | None = None
    projects: str | None = None
    organizations: str | None = None

    @field_validator("users", "projects", "organizations", mode="plain")
    @classmethod
    def _uri(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if isinstance(value, Path):
            value = str(value)
        text = require_text(value, _REFERENCE_HINT)
        scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", text)
        if scheme:
            if scheme.group(1).lower() != "s3":
                raise fail(f"{_REFERENCE_HINT}, not a {scheme.group(1)}:// URI")
            rest = scheme.group(2).strip("/")
            if not rest or rest.startswith("/"):
                raise fail(f"{text!r} names no bucket")
            return f"s3://{rest}"
        base = (info.context or {}).get("base_dir")
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = Path(base) / path if base is not None else Path.cwd() / path
        path = path.resolve()
        if not path.exists():
            shown = f" (resolved to {path})" if str(path) != text else ""
            raise fail(f"file {text} does not exist{shown}")
        return str(path)

    def uris(self) -> dict[str, str]:
        """The tables that are set, ``{"users": "/abs/users.csv", ...}`` (local paths absolute)."""
        return {name: uri for name in ("users", "projects", "organizations") if (uri := getattr(self, name))}
