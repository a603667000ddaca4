"""``notifications: {max_event_age, destinations, subscriptions}``: which events are sent where."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from transforms.durations import Duration

from .base import ConfigError, Section, fail, kind_of, require_text
from .destinations import Destination, destination_shape
from .fields import DurationValue, activity_filter, fixed_length, local_path

__all__ = ["NotificationsConfig", "Subscription"]


class Subscription(Section):
    """``{name, filter, destinations, template}``: events matching ``filter`` go to ``destinations``."""

    name: str
    filter: Any = Field(default=None, validate_default=True)
    destinations: list[str]
    template: str | None = None

    @field_validator("name", mode="plain")
    @classmethod
    def _name(cls, value: Any) -> str:
        return require_text(value, "must be a non-empty string")

    @field_validator("filter", mode="plain")
    @classmethod
    def _filter(cls, value: Any) -> Any:
        return activity_filter(value)

    @field_validator("destinations", mode="plain")
    @classmethod
    def _destinations(cls, value: Any) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise fail("must be a non-empty list of destination names")
        for name in value:
            if not isinstance(name, str) or not name.strip():
                raise fail(f"destination names must be strings, not {kind_of(name)}")
        return [name.strip() for name in value]

    @field_validator("template", mode="plain")
    @classmethod
    def _template(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        path = local_path(value, info, must_exist=True)
        from destinations.templates import TemplateProblem, compile_template_file

        try:
            compile_template_file(path)
        except TemplateProblem as exc:
            raise fail(str(exc)) from None
        return path


class NotificationsConfig(Section):
    """``notifications: {max_event_age, destinations, subscriptions}``."""

    #: Events older than this when first evaluated are recorded as skipped, not sent.
    max_event_age: DurationValue = Duration(days=7)
    destinations: dict[str, Annotated[Destination, BeforeValidator(destination_shape)]] = Field(default_factory=dict)
    subscriptions: list[Subscription] = Field(default_factory=list)

    @field_validator("max_event_age", mode="after")
    @classmethod
    def _fixed_length(cls, value: Duration | None) -> Duration | None:
        return fixed_length(value)

    @field_validator("destinations", mode="before")
    @classmethod
    def _destination_shapes(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise fail(f"must be a mapping of name → destination, not {kind_of(value)}")
        return value

    @model_validator(mode="after")
    def _known_destinations(self) -> "NotificationsConfig":
        names = set()
        for position, subscription in enumerate(self.subscriptions):
            if subscription.name in names:
                raise fail(f"subscriptions[{position}].name: {subscription.name!r} is used twice")
            names.add(subscription.name)
            for name in subscription.destinations:
                if name not in self.destinations:
                    known = ", ".join(sorted(self.destinations)) or "none defined"
                    raise fail(f"subscriptions[{position}] ({subscription.name}): unknown destination {name!r} "
                               f"(destinations: {known})")
        return self

    def subscription(self, name: str) -> Subscription:
        for subscription in self.subscriptions:
            if subscription.name == name:
                return subscription
        known = ", ".join(s.name for s in self.subscriptions) or "none configured"
        raise ConfigError(f"no subscription named {name!r} (subscriptions: {known})")
