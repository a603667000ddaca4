"""``masking: {fields: [...]}``: field names whose values are masked in ``before``/``after`` of changes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, PlainValidator

from transforms.changes import DEFAULT_MASKED_FIELDS as _TRANSFORM_DEFAULT_MASKED_FIELDS

from .base import Section, fail, require_text

__all__ = ["DEFAULT_MASKED_FIELDS", "MaskingConfig"]

#: Masked unless the file lists its own ``masking.fields`` (PostHog masks the same ones).
DEFAULT_MASKED_FIELDS: tuple[str, ...] = _TRANSFORM_DEFAULT_MASKED_FIELDS


def _mask_field(value: Any) -> str:
    text = require_text(value, "must be a non-empty string")
    if "." in text:
        scope, _, field = text.partition(".")
        if not scope.strip() or not field.strip() or "." in field:
            raise fail(f"must be FIELD or Scope.FIELD, not {text!r}")
        text = f"{scope.strip()}.{field.strip()}"
    return text


class MaskingConfig(Section):
    """``masking: {fields: [...]}``: fields whose values are masked in ``before``/``after``."""

    fields: list[Annotated[str, PlainValidator(_mask_field)]] = Field(
        default_factory=lambda: list(DEFAULT_MASKED_FIELDS)
    )

    def rules(self) -> list[tuple[str | None, str]]:
        """``(scope, field)`` per entry, as written; scope ``None`` means every scope.

        ``Integration.config`` → ``("Integration", "config")``; ``password`` → ``(None, "password")``.
        Case folding, if any, is the caller's job.
        """
        rules: list[tuple[str | None, str]] = []
        for entry in self.fields:
            scope, dot, field = entry.partition(".")
            rules.append((scope, field) if dot else (None, entry))
        return rules
