"""What every section builds on: the strict :class:`Section` model, :class:`ConfigError` and :func:`fail`.

A section's validators report a problem by raising ``fail("message")``; :mod:`.errors` turns it into
``file: section.entry.field: message`` without rewording it.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

from transforms.values import kind_of  # one wording everywhere ("a number", "a list", "null", ...)

__all__ = ["ConfigError", "Section", "fail", "kind_of", "require_text"]


class ConfigError(ValueError):
    """The configuration cannot be used. The message is one line naming the file, section, entry, field;
    ``problems`` (:class:`~transforms.problems.Problem`) has each location as a path, when validation found it."""

    def __init__(self, message: str, problems: Sequence[Any] = ()):
        super().__init__(re.sub(r"\s*\n\s*", " ", str(message)).strip())
        self.problems = list(problems)


class Section(BaseModel):
    """Base of every model in the file: unknown keys are errors, and a loaded configuration is frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def fail(message: str) -> PydanticCustomError:
    """An error for pydantic whose message is exactly ``message`` (braces included); raise it in a validator."""
    return PydanticCustomError("activitylog", "{message}", {"message": message})


def require_text(value: Any, hint: str) -> str:
    """``value`` stripped, or ``fail(hint)`` if it is not a non-blank string (``hint, not a number`` if no string).

    ``hint`` is what the field must be, e.g. ``"must be a non-empty string"``.
    """
    if not isinstance(value, str) or not value.strip():
        raise fail(hint + ("" if isinstance(value, str) else f", not {kind_of(value)}"))
    return value.strip()
