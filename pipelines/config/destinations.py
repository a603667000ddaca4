"""Where notifications go: Slack, a signed webhook, email (SMTP) or a local file, told apart by ``type``."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from .base import Section, fail, kind_of
from .fields import local_path
from .secrets import SecretRef

__all__ = [
    "DESTINATION_TYPES",
    "Destination",
    "EmailDestination",
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


class EmailDestination(Section):
    """Email through an SMTP server: one message (plain text and HTML) per batch of events."""

    type: Literal["email"]
    host: str = Field(min_length=1)
    #: 587 for ``starttls``, 465 for ``tls``, 25 for ``none`` when not given.
    port: int | None = Field(default=None, ge=1, le=65535)
    #: ``starttls`` (upgrade a plain connection, required), ``tls`` (implicit TLS) or ``none`` (loopback relays).
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: SecretRef | None = None
    password: SecretRef | None = None
    #: A PEM file of certificates to trust instead of the system's (a private relay's own CA).
    ca_file: str | None = None
    sender: str = Field(alias="from", min_length=3)
    to: list[str] = Field(min_length=1)
    #: Events of one subscription sent together in one message.
    batch_size: int = Field(default=20, ge=1, le=200)
    #: Jinja2 templates of the subject, plain text and HTML bodies (files); defaults built in.
    subject_template: str | None = None
    text_template: str | None = None
    html_template: str | None = None
    link_template: str | None = None
    max_attempts: int = Field(default=5, ge=1, le=20)
    timeout: float = Field(default=30.0, gt=0)

    @field_validator("to", mode="after")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if "@" not in address or any(c in address for c in "\r\n,;"):
                raise fail(f"{address!r} is not one email address")
        return value

    @field_validator("sender", mode="after")
    @classmethod
    def _sender(cls, value: str) -> str:
        if "@" not in value or any(c in value for c in "\r\n"):
            raise fail(f"{value!r} is not an email address")
        return value

    @field_validator("ca_file", "subject_template", "text_template", "html_template", mode="plain")
    @classmethod
    def _files(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        path = local_path(value, info, must_exist=True)
        if info.field_name != "ca_file":
            from destinations.templates import TemplateProblem, compile_template_file

            try:
                compile_template_file(path, html=info.field_name == "html_template")
            except TemplateProblem as exc:
                raise fail(str(exc)) from None
        return path

    @model_validator(mode="after")
    def _credentials(self) -> "EmailDestination":
        if (self.username is None) != (self.password is None):
            raise fail("username and password go together")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"starttls": 587, "tls": 465, "none": 25}[self.security]


class FileDestination(Section):
    """Appends one JSON line per delivered event to a local file (demo, debugging)."""

    type: Literal["file"]
    path: str

    @field_validator("path", mode="plain")
    @classmethod
    def _path(cls, value: Any, info: ValidationInfo) -> str:
        return local_path(value, info, must_exist=False)


Destination = Annotated[Union[SlackDestination, WebhookDestination, EmailDestination, FileDestination], Field(discriminator="type")]
DESTINATION_TYPES = {"slack": SlackDestination, "webhook": WebhookDestination, "email": EmailDestination, "file": FileDestination}


def destination_shape(value: Any) -> Any:
    """A ``before`` validator: a mapping with a known ``type``, so the error names the type, not the union."""
    if isinstance(value, BaseModel):
        return value
    if not isinstance(value, dict):
        raise fail(f"must be a mapping with a type (slack, webhook, email, file), not {kind_of(value)}")
    if "type" not in value:
        raise fail("type is required (slack, webhook, email or file)")
    if value["type"] not in DESTINATION_TYPES:
        raise fail(f"type {value['type']!r} is not one of slack, webhook, email, file")
    return value
