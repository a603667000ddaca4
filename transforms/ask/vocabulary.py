"""What a question may name: the words for activities, scopes and periods, the reader's vocabulary
(scopes, activities, users), and the answer's parts (:class:`Chip`, :class:`Answer`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterable, Mapping, Sequence

from transforms.filters import KNOWN_SCOPES, ActivityFilter

MAX_QUESTION = 500
EXAMPLES = ("feature flags deleted by jane@example.com in the last 30 days",
            "who changed the billing flag yesterday", "impersonated logins this week")

#: Verbs → the activity PostHog writes.
VERBS = {
    "created": ("created", "create", "creates", "creating", "added", "add", "adds", "new", "creation", "creations"),
    "updated": ("updated", "update", "updates", "changed", "change", "changes", "modified", "modify",
                "edited", "edit", "edits", "modification", "modifications"),
    "deleted": ("deleted", "delete", "deletes", "removed", "remove", "removes", "deletion", "deletions",
                "removal", "removals"),
    "logged_in": ("login", "logins", "log-in", "log-ins", "signin", "signins", "sign-ins"),
    "logged_out": ("logout", "logouts", "log-out", "log-outs"),
    "exported": ("exported", "export", "exports"),
    "restored": ("restored", "restore", "restores", "undeleted"),
}
_VERB_WORDS = frozenset(v for verbs in VERBS.values() for v in verbs)
#: Words that mean a scope although they are not its name.
SCOPE_WORDS = {"flag": "FeatureFlag", "flags": "FeatureFlag", "people": "Person", "persons": "Person",
               "members": "OrganizationMembership", "memberships": "OrganizationMembership",
               "invites": "OrganizationInvite", "invitations": "OrganizationInvite",
               "recordings": "SessionRecordingPlaylist", "playlists": "SessionRecordingPlaylist",
               "destinations": "HogFunction", "transformations": "HogFunction",
               "workflows": "HogFlow", "apps": "Plugin"}
#: Last words of scope names that are too general to mean one scope on their own.
GENERAL_WORDS = frozenset({"log", "item", "query", "issue", "config", "filter", "preset", "metric", "trace"})
STOPWORDS = frozenset("""
a an the all any every of in on at to for from by with within during over and or but me my our us
show list find give tell what which who whom whose when where how many much did does do done was were
is are be been being has have had that this these those there their it its them they activity
activities event events entries entry log logs happened happen please i we you anything everything
something someone somebody anyone recently recent ago last past previous period time times count
made by about ones one history audit trail actions action records record done performed
""".split())
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                "nine": 9, "ten": 10, "twelve": 12, "fourteen": 14, "thirty": 30, "ninety": 90, "a": 1, "an": 1}
UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1),
         "week": timedelta(weeks=1), "month": timedelta(days=30), "year": timedelta(days=365)}


class AskError(ValueError):
    """A question the parser does not understand; the message says what and suggests a phrasing."""


@dataclass(frozen=True)
class Vocabulary:
    """What questions may name: scopes, activities and users (``uuid, email, first_name, last_name``)."""

    scopes: tuple[str, ...] = ()
    activities: tuple[str, ...] = ()
    users: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def of(cls, available: Mapping[str, Any] | None = None) -> "Vocabulary":
        """From :func:`transforms.query.available_filters` (what the reader can see) and PostHog's scopes."""
        available = available or {}
        scopes = sorted(KNOWN_SCOPES | set(available.get("scopes") or ()))
        activities = sorted(set(VERBS) | set(available.get("activities") or ()))
        return cls(tuple(scopes), tuple(activities), tuple(available.get("users") or ()))


@dataclass(frozen=True)
class Chip:
    """One understood part of the question: the feed's query parameter, its value and a label."""

    param: str
    value: str
    label: str


@dataclass(frozen=True)
class Answer:
    question: str
    filter: ActivityFilter
    chips: tuple[Chip, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def params(self) -> list[tuple[str, str]]:
        """The feed's query parameters (``/?…``), one per chip."""
        return [(chip.param, chip.value) for chip in self.chips]


def _camel_words(name: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Z]+(?=[A-Z][a-z]|$)|[A-Z]?[a-z]+|[A-Z]+|\d+", name)]


def _plural(word: str) -> str:
    if word.endswith("y") and not word.endswith(("ay", "ey", "oy")):
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    return word + "s"


def scope_aliases(scopes: Iterable[str]) -> tuple[dict[tuple[str, ...], str], dict[str, list[str]]]:
    """Phrases (word tuples) → scope, and general words → the scopes they could mean (ambiguous)."""
    exact: dict[tuple[str, ...], str] = {}
    last_words: dict[str, set[str]] = {}
    for scope in scopes:
        words = _camel_words(scope) or [scope.lower()]
        for phrase in (words, words[:-1] + [_plural(words[-1])]):
            exact[tuple(phrase)] = scope
            exact[("".join(phrase),)] = scope
        if len(words) > 1:
            for form in (words[-1], _plural(words[-1])):
                last_words.setdefault(form, set()).add(scope)
    for word, scope in SCOPE_WORDS.items():
        if scope in scopes:
            exact.setdefault((word,), scope)
    ambiguous: dict[str, list[str]] = {}
    for word, found in last_words.items():
        if (word,) in exact or word in STOPWORDS or word in _VERB_WORDS:
            continue
        if len(found) == 1 and word not in GENERAL_WORDS:
            exact[(word,)] = next(iter(found))
        else:
            ambiguous[word] = sorted(found)
    return exact, ambiguous


def _user_label(user: Mapping[str, Any]) -> str:
    name = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p)
    email = user.get("email")
    return f"{name} <{email}>" if name and email else (name or email or str(user.get("uuid")))


def _user_key(user: Mapping[str, Any]) -> str:
    return user.get("email") or str(user["uuid"])


def _users_named(users: Sequence[Mapping[str, Any]], words: Sequence[str]) -> list[Mapping[str, Any]]:
    wanted = " ".join(words)
    found = []
    for user in users:
        first, last = (user.get("first_name") or "").lower(), (user.get("last_name") or "").lower()
        email = (user.get("email") or "").lower()
        names = {first, last, f"{first} {last}".strip(), email.split("@")[0]} - {""}
        if wanted in names:
            found.append(user)
    return found
