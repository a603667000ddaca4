"""Which ``activity_log`` rows the read API serves at all: PostHog's visibility restrictions.

PostHog hides some rows from every viewer who is not PostHog staff (organization admins included):
impersonated logins, changes to user accounts, staff-only operations (instance settings, AI-gateway
credit, e-mail sending suspension), SCIM provisioning, and support-ticket comments (whose bodies are
gated on ticket access). There is no staff here, so a restricted row is served to no key.

A rule names a scope, the activities it hides there, and optionally conditions on boolean columns
(``when: {was_impersonated: true}``: only impersonated ones). :func:`hidden` turns rules into one Polars
condition; :func:`visible` is its negation, null-safe (a row whose scope or activity is null matches no
rule and stays visible). Matching is exact and case-sensitive, as PostHog's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import polars as pl

__all__ = ["CONDITION_COLUMNS", "DEFAULT_RULES", "VisibilityRule", "hidden", "rules_from", "visible"]

#: The columns a rule's ``when`` may test (booleans of ``activity_log``).
CONDITION_COLUMNS: tuple[str, ...] = ("was_impersonated", "is_system")


@dataclass(frozen=True)
class VisibilityRule:
    """Rows of ``scope`` whose activity is one of ``activities`` (and whose ``when`` columns hold the given
    values) are hidden."""

    scope: str
    activities: tuple[str, ...]
    when: tuple[tuple[str, bool], ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.scope, str) or not self.scope:
            raise ValueError("scope: must be a non-empty string")
        if not self.activities or not all(isinstance(a, str) and a for a in self.activities):
            raise ValueError("activities: must be a non-empty list of non-empty strings")
        for column, value in self.when:
            if column not in CONDITION_COLUMNS:
                raise ValueError(f"when: {column!r} is not one of {', '.join(CONDITION_COLUMNS)}")
            if not isinstance(value, bool):
                raise ValueError(f"when.{column}: must be true or false")

    def condition(self) -> pl.Expr:
        """True where the rule hides the row; never null."""
        match = (pl.col("scope") == self.scope) & pl.col("activity").is_in(list(self.activities))
        for column, value in self.when:
            match = match & (pl.col(column) == value)
        return match.fill_null(False)

    def to_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "activities": list(self.activities), "when": dict(self.when)}


def _rule(scope: str, *activities: str, **when: bool) -> VisibilityRule:
    return VisibilityRule(scope, tuple(activities), tuple(sorted(when.items())))


_SCIM = ("scim_provisioned", "scim_replaced", "scim_updated", "scim_deprovisioned")

#: PostHog's restriction list (``activity_visibility_restrictions``), in its order.
DEFAULT_RULES: tuple[VisibilityRule, ...] = (
    _rule("User", "logged_in", "logged_out", was_impersonated=True),
    _rule("User", "created", "updated", "deleted"),
    _rule("User", *_SCIM),
    _rule("Team", "email_sending_suspended", "email_sending_unsuspended"),
    _rule("Role", *_SCIM),
    _rule("InstanceSetting", "updated"),
    _rule("AIGatewayCredit", "credit_added"),
    _rule("Ticket", "commented", "created task"),
    _rule("conversations_ticket", "commented", "created task"),
)


def hidden(rules: Iterable[VisibilityRule]) -> pl.Expr:
    """True where any rule hides the row (never null); no rules: nothing is hidden."""
    expression = pl.lit(False)
    for rule in rules:
        expression = expression | rule.condition()
    return expression


def visible(rules: Iterable[VisibilityRule]) -> pl.Expr:
    """True where no rule hides the row (never null)."""
    return ~hidden(rules)


def rules_from(data: Iterable[dict[str, Any]]) -> tuple[VisibilityRule, ...]:
    """Rules from their :meth:`VisibilityRule.to_dict` form (what an export run is handed); ``ValueError``
    names what is wrong."""
    out = []
    for index, entry in enumerate(data):
        if not isinstance(entry, dict) or set(entry) - {"scope", "activities", "when"}:
            raise ValueError(f"[{index}]: must be {{scope, activities, when}}")
        activities, when = entry.get("activities"), entry.get("when") or {}
        if not isinstance(activities, list) or not isinstance(when, dict):
            raise ValueError(f"[{index}]: activities must be a list and when an object")
        try:
            out.append(VisibilityRule(entry.get("scope"), tuple(activities), tuple(sorted(when.items()))))
        except ValueError as exc:
            raise ValueError(f"[{index}].{exc}") from None
    return tuple(out)
