"""``visibility: {rules: [...], add: [...]}``: rows the read API serves to no key (PostHog's restrictions).

Without the section, PostHog's restriction list (:data:`transforms.visibility.DEFAULT_RULES`) applies.
``rules`` replaces that list (``rules: []`` hides nothing; to drop one rule, list the others); ``add``
appends rules to it. Each rule is ``{scope, activities: [...], when: {was_impersonated|is_system: bool}}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from transforms.visibility import CONDITION_COLUMNS, DEFAULT_RULES, VisibilityRule

from .base import Section, fail, kind_of, require_text

__all__ = ["VisibilityConfig", "VisibilityRuleConfig"]


class VisibilityRuleConfig(Section):
    """One rule: rows of ``scope`` whose activity is in ``activities`` (and that match ``when``) are hidden."""

    scope: str
    activities: list[str]
    when: dict[str, bool] = Field(default_factory=dict)

    @field_validator("scope", mode="plain")
    @classmethod
    def _scope(cls, value: Any) -> str:
        return require_text(value, "must be a non-empty string")

    @field_validator("activities", mode="plain")
    @classmethod
    def _activities(cls, value: Any) -> list[str]:
        if not isinstance(value, list) or not value:
            raise fail(f"must be a non-empty list of activities, not {kind_of(value)}")
        return [require_text(v, "each activity must be a non-empty string") for v in value]

    @field_validator("when", mode="plain")
    @classmethod
    def _when(cls, value: Any) -> dict[str, bool]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise fail(f"must be a mapping of {', '.join(CONDITION_COLUMNS)} to true/false, not {kind_of(value)}")
        for column, flag in value.items():
            if column not in CONDITION_COLUMNS:
                raise fail(f"{column!r} is not one of {', '.join(CONDITION_COLUMNS)}")
            if not isinstance(flag, bool):
                raise fail(f"{column}: must be true or false, not {kind_of(flag)}")
        return dict(value)

    def rule(self) -> VisibilityRule:
        return VisibilityRule(self.scope, tuple(self.activities), tuple(sorted(self.when.items())))


def _default_rules() -> list[VisibilityRuleConfig]:
    return [VisibilityRuleConfig(**rule.to_dict()) for rule in DEFAULT_RULES]


class VisibilityConfig(Section):
    """``visibility: {rules, add}``: the rows no key is served."""

    rules: list[VisibilityRuleConfig] = Field(default_factory=_default_rules)
    add: list[VisibilityRuleConfig] = Field(default_factory=list)

    def effective(self) -> tuple[VisibilityRule, ...]:
        """The rules in force: ``rules`` then ``add``."""
        return tuple(entry.rule() for entry in [*self.rules, *self.add])
