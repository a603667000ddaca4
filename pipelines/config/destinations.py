"""Where notifications go: Slack, a signed webhook or a local file, told apart by ``type``."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from .base import Section, fail, kind_of
from .fields import local_path
from .secrets import SecretRef

__all__ = [
    "DESTINATION_TYPES",
    "Destination",
    "FileDestination",
    "SlackDestination",
    "WebhookDestination",
    "destination_shape",
]


class SlackDestination(Section):
    """A Slack incoming webhook."""

    type: Literal["slack"]
    webhook_url: SecretRef
    #: A link to the resource, e.g. ``https://eu.posthog.com/project/{team_id}/feature_flags/{item_id}``;
    #: placeholders are activity_log columns.
    link_template: str | None = None
    #: Events of one subscription sent together in one message (Slack allows 50 blocks per message).
    batch_size: int = Field(default=10, ge=1, le=20)
    #: Seconds between two messages to this webhook (Slack allows about one per second).
    min_interval: float = Field(default=1.0, ge=0)
    max_attempts: int = Field(default=5, ge=1, le=20)
    timeout: float = Field(default=10.0, gt=0)


class WebhookDestination(Section):
    """A generic webhook: one signed JSON POST per event (Standard Webhooks)."""

    type: Literal["webhook"]
    url: SecretRef
    #: The signing secret (``whsec_…`` base64, as Standard Webhooks hands them out); unsigned without.
    secret: SecretRef | None = None
    max_attempts: int = Field(default=5, ge=1, le=20)
    timeout: float = Field(default=10.0, gt=0)


class FileDestination(Section):
    """Appends one JSON line per delivered event to a local file (demo, debugging)."""

    type: Literal["file"]
    path: str

    @field_validator("path", mode="plain")
    @classmethod
    def _path(cls, value: Any, info: ValidationInfo) -> str:
        return local_path(value, info, must_exist=False)


Destination = Annotated[Union[SlackDestination, WebhookDestination, FileDestination], Field(discriminator="type")]
DESTINATION_TYPES = {"slack": SlackDestination, "webhook": WebhookDestination, "file": FileDestination}


def destination_shape(value: Any) -> Any:
    """A ``before`` validator: a mapping with a known ``type``, so the error names the type, not the union."""
    if isinstance(value, BaseModel):
        return value
    if not isinstance(value, dict):
        raise fail(f"must be a mapping with a type (slack, webhook, file), not {kind_of(value)}")
    if "type" not in value:
        raise fail("type is required (slack, webhook or file)")
    if value["type"] not in DESTINATION_TYPES:
        raise fail(f"type {value['type']!r} is not one of slack, webhook, file")
    return value
