"""Questions in plain language → the filter language (:class:`transforms.filters.ActivityFilter`).

Deterministic and pure (no network, no lake): :func:`parse_question` reads a question against a
:class:`Vocabulary` (the scopes PostHog writes plus those in the data, the activities in the data, the
users the reader can see) and a ``now``. It understands:

* scopes by name, spaced, plural or any case: "feature flags", "insights", "Dashboard", "flag";
* activities and their verbs: "deleted", "removed", "changed", "created", "logins";
* users by email or by name (first, last or full) after "by"/"from"/"of", or anywhere by email;
* dates from a fixed grammar, computed with Python's own :mod:`datetime` (no dependency, the same
  answer on every machine): today, yesterday, this week/month/year (calendar), (in the) last/past [N]
  hours/days/weeks/months ("last week" is the last 7 days), N days ago, since/on/before YYYY-MM-DD, between/from YYYY-MM-DD and/to YYYY-MM-DD;
* item ids ("flag 42", "item 42", "#42", "id 42") and names ("the billing flag", "named billing",
  quoted text) as the text search;
* impersonated / not impersonated, system / not system ("by the system", "by people").

Anything else is refused with :class:`AskError`, whose message says which words were not understood and
suggests phrasings: an unknown user, a scope word that names several scopes, nonsense. The answer's
filter is built by :meth:`ActivityFilter.from_query` from the feed's own query parameters, so what runs
is exactly what the page's filter chips show.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

from transforms.filters import KNOWN_SCOPES, ActivityFilter, FilterError

__all__ = ["EXAMPLES", "MAX_QUESTION", "PROPOSAL_FIELDS", "Answer", "AskError", "Chip", "Result", "Vocabulary",
           "answer_from_proposal", "ask", "parse_question", "scope_aliases"]

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


# ------------------------------------------------------------------------------------------------


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


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise AskError(f"{text!r} is not a date: write dates as YYYY-MM-DD, e.g. 2024-01-31") from None


def _start_of_day(value: date) -> datetime:
    return datetime.combine(value, time.min, tzinfo=timezone.utc)


_DATE = r"(\d{4}-\d{2}-\d{2})"
_NUMBER = r"(\d+|" + "|".join(NUMBER_WORDS) + r")"
_UNIT = r"(minute|hour|day|week|month|year)s?"


def _dates(text: str, now: datetime) -> tuple[str, datetime | None, datetime | None, str] | None:
    """The first date phrase in ``text``: (matched text, start, end, label); Python's datetime only."""
    today = now.date()
    week_start = today - timedelta(days=today.weekday())
    month_start = today.replace(day=1)
    fixed = {
        "today": (_start_of_day(today), None), "yesterday": (_start_of_day(today - timedelta(days=1)),
                                                             _start_of_day(today) - timedelta(microseconds=1)),
        "this week": (_start_of_day(week_start), None),
        "this month": (_start_of_day(month_start), None),
        "this year": (_start_of_day(today.replace(month=1, day=1)), None),
    }
    patterns: list[tuple[str, Any]] = [
        (rf"\b(?:between|from)\s+{_DATE}\s+(?:and|to|until)\s+{_DATE}\b",
         lambda m: (_start_of_day(_day(m[1])), _start_of_day(_day(m[2]) + timedelta(days=1)) - timedelta(microseconds=1),
                    f"{m[1]} to {m[2]}")),
        (rf"\b(?:since|after)\s+{_DATE}\b", lambda m: (_start_of_day(_day(m[1])), None, f"since {m[1]}")),
        (rf"\bbefore\s+{_DATE}\b", lambda m: (None, _start_of_day(_day(m[1])) - timedelta(microseconds=1),
                                             f"before {m[1]}")),
        (rf"\b(?:on\s+)?{_DATE}\b", lambda m: (_start_of_day(_day(m[1])),
                                              _start_of_day(_day(m[1]) + timedelta(days=1)) - timedelta(microseconds=1),
                                              f"on {m[1]}")),
        (rf"\b(?:(?:in|during|within|over)\s+)?(?:the\s+)?(?:last|past|previous)\s+{_NUMBER}\s+{_UNIT}\b",
         lambda m: _ago(now, m[1], m[2])),
        (rf"\b{_NUMBER}\s+{_UNIT}\s+ago\b", lambda m: _ago(now, m[1], m[2])),
        (rf"\b(?:(?:in|during|within|over)\s+)?(?:the\s+)?(?:last|past)\s+{_UNIT}\b",
         lambda m: _ago(now, "1", m[1])),
        (r"\b(?:" + "|".join(re.escape(k) for k in fixed) + r")\b",
         lambda m: (*fixed[m[0]], m[0])),
    ]
    for pattern, build in patterns:
        match = re.search(pattern, text)
        if match:
            start, end, label = build(match)
            return match[0], start, end, label
    return None


def _ago(now: datetime, number: str, unit: str) -> tuple[datetime, None, str]:
    count = int(number) if number.isdigit() else NUMBER_WORDS[number]
    if count <= 0 or count > 100_000:
        raise AskError(f"'{number} {unit}s' is not a period I can use: give a positive number")
    plural = unit if count == 1 else unit + "s"
    return now - UNITS[unit] * count, None, f"last {count} {plural}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _suggest(word: str, vocabulary: Vocabulary) -> str:
    words = sorted({w for phrase in scope_aliases(vocabulary.scopes)[0] for w in phrase}
                   | {v for verbs in VERBS.values() for v in verbs} | set(vocabulary.activities))
    close = difflib.get_close_matches(word, words, n=1, cutoff=0.8)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_question(question: str, vocabulary: Vocabulary, now: datetime | None = None) -> Answer:
    """The filter a question asks for, or :class:`AskError` naming what was not understood."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    if not isinstance(question, str) or not question.strip():
        raise AskError("ask a question, e.g. " + "; ".join(repr(e) for e in EXAMPLES))
    if len(question) > MAX_QUESTION:
        raise AskError(f"a question has at most {MAX_QUESTION} characters, not {len(question)}")
    chips: list[Chip] = []
    text = " " + question.strip() + " "

    # Quoted text: the text search, verbatim.
    for quoted in re.findall(r"[\"“]([^\"”]+)[\"”]", text):
        chips.append(Chip("search_text", quoted.strip(), f"text: {quoted.strip()}"))
    text = re.sub(r"[\"“][^\"”]*[\"”]", " ", text)

    # Emails: users the reader can see.
    by_email = {(u.get("email") or "").lower(): u for u in vocabulary.users if u.get("email")}
    for email in re.findall(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+", text):
        user = by_email.get(email.lower())
        if user is None:
            raise AskError(f"I do not know the user {email!r} in the activity you can see"
                           + _known_users(vocabulary))
        chips.append(Chip("users", _user_key(user), f"by {_user_label(user)}"))
    text = re.sub(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+", " ", text)

    lowered = re.sub(r"\s+", " ", text.lower())
    # Dates.
    found = _dates(lowered, now)
    if found:
        matched, start, end, label = found
        if start is not None:
            chips.append(Chip("start_date", _iso(start), label))
        if end is not None:
            chips.append(Chip("end_date", _iso(end), label if start is None else f"until {end:%Y-%m-%d}"))
        lowered = lowered.replace(matched, " ", 1)
        if _dates(lowered, now):
            raise AskError(f"the question has two time periods ({label!r} and {_dates(lowered, now)[3]!r}): keep one")

    # Impersonated / system.
    for pattern, param, value, label in (
            (r"\b(?:not|non|without|excluding|no)[ -]impersonat\w*", "was_impersonated", "false", "not impersonated"),
            (r"\bimpersonat\w*", "was_impersonated", "true", "impersonated"),
            (r"\b(?:not|non|excluding|no)[ -](?:the )?system\b|\bby (?:people|humans|users)\b|\bhuman\b",
             "is_system", "false", "not system"),
            (r"\b(?:by (?:the )?)?(?:system|automatic|automated)\b", "is_system", "true", "system")):
        if re.search(pattern, lowered) and not any(c.param == param for c in chips):
            chips.append(Chip(param, value, label))
            lowered = re.sub(pattern, " ", lowered)

    # Item ids.
    for item in re.findall(r"(?:#|\b(?:id|item|number|no\.?)\s*#?\s*)([A-Za-z0-9_-]*\d[A-Za-z0-9_-]*)\b", lowered):
        chips.append(Chip("item_ids", item, f"item {item}"))
    lowered = re.sub(r"(?:#|\b(?:id|item|number|no\.?)\s*#?\s*)([A-Za-z0-9_-]*\d[A-Za-z0-9_-]*)\b", " ", lowered)

    words = re.findall(r"[a-z0-9][a-z0-9_'-]*", lowered)
    exact, ambiguous = scope_aliases(vocabulary.scopes)
    verb_of = {verb: activity for activity, verbs in VERBS.items() for verb in verbs}
    for activity in vocabulary.activities:
        verb_of.setdefault(activity.lower(), activity)
        verb_of.setdefault(activity.lower().replace("_", "-"), activity)
    not_understood: list[str] = []
    position = 0
    longest = max((len(p) for p in exact), default=1)
    while position < len(words):
        word = words[position]
        # Users by name after "by"/"from".
        if word in ("by", "from") and position + 1 < len(words):
            taken = _take_user(words, position + 1, vocabulary, chips)
            if taken:
                position = taken
                continue
        # A scope phrase (longest first), maybe with a name or id before/after it.
        matched = None
        for size in range(min(longest, len(words) - position), 0, -1):
            phrase = tuple(words[position:position + size])
            if phrase in exact:
                matched = (exact[phrase], size)
                break
        if matched:
            scope, size = matched
            if not any(c.param == "scopes" and c.value == scope for c in chips):
                chips.append(Chip("scopes", scope, f"scope {scope}"))
            position += size
            if position < len(words) and re.fullmatch(r"\d[\w-]*", words[position]):
                chips.append(Chip("item_ids", words[position], f"item {words[position]}"))
                position += 1
            continue
        if word in ambiguous:
            raise AskError(f"{word!r} could be any of {', '.join(ambiguous[word])}: name one of them")
        if word in verb_of:
            activity = verb_of[word]
            if word == "logged" and position + 1 < len(words) and words[position + 1] in ("in", "out"):
                activity = "logged_" + words[position + 1]
                position += 1
            if not any(c.param == "activities" and c.value == activity for c in chips):
                chips.append(Chip("activities", activity, activity.replace("_", " ")))
            position += 1
            continue
        if word in ("named", "called") and position + 1 < len(words):
            chips.append(Chip("search_text", words[position + 1], f"named {words[position + 1]}"))
            position += 2
            continue
        if word == "logged" and position + 1 < len(words) and words[position + 1] in ("in", "out"):
            activity = "logged_" + words[position + 1]
            chips.append(Chip("activities", activity, activity.replace("_", " ")))
            position += 2
            continue
        if word in STOPWORDS or word.endswith("'s") and word[:-2] in STOPWORDS:
            position += 1
            continue
        # A user's name anywhere ("jane's flags", "alice able").
        taken = _take_user(words, position, vocabulary, chips, required=False)
        if taken:
            position = taken
            continue
        # A name before a scope word: "the billing flag".
        following = tuple(words[position + 1:position + 2])
        if following and (following in exact or following[0] in ambiguous):
            chips.append(Chip("search_text", word, f"named {word}"))
            position += 1
            continue
        not_understood.append(word)
        position += 1
    if not_understood:
        hints = "".join(_suggest(w, vocabulary) for w in not_understood[:1])
        raise AskError(
            f"I did not understand {', '.join(repr(w) for w in not_understood)}{hints}. "
            "I know scopes (feature flags, insights, dashboards…), actions (created, changed, deleted, logins), "
            "users by email or name after 'by', periods (today, this week, last 30 days, since 2024-01-31), "
            "item ids (flag 42), names in quotes, impersonated and system. For example: "
            + "; ".join(repr(e) for e in EXAMPLES))
    if not chips:
        raise AskError("the question names no scope, action, user, period or item: ask e.g. "
                       + "; ".join(repr(e) for e in EXAMPLES))
    searches = [c for c in chips if c.param == "search_text"]
    if len(searches) > 1:
        raise AskError(f"the question names two things to search for ({', '.join(repr(c.value) for c in searches)}): "
                       "keep one, or put the whole name in quotes")
    try:
        activity_filter = ActivityFilter.from_query([(c.param, c.value) for c in chips])
    except FilterError as exc:
        raise AskError(f"the question gives an impossible filter: {exc}") from None
    return Answer(question.strip(), activity_filter, tuple(chips), tuple(activity_filter.warnings()))


def _take_user(words: Sequence[str], at: int, vocabulary: Vocabulary, chips: list[Chip],
               required: bool = True) -> int | None:
    """Match a user's name at ``words[at:]`` (full name first); the position after it, or None."""
    for size in (2, 1):
        phrase = [w[:-2] if w.endswith("'s") and i == size - 1 else w for i, w in enumerate(words[at:at + size])]
        if len(phrase) < size:
            continue
        found = _users_named(vocabulary.users, phrase)
        if len(found) > 1:
            raise AskError(f"{' '.join(phrase)!r} could be {', '.join(_user_label(u) for u in found)}: "
                           "give the email")
        if found:
            chips.append(Chip("users", _user_key(found[0]), f"by {_user_label(found[0])}"))
            return at + size
    word = words[at]
    if required and word not in STOPWORDS and not re.fullmatch(r"\d.*", word) and word not in (
            "people", "humans", "users", "system"):
        exact, _ = scope_aliases(vocabulary.scopes)
        if (word,) in exact or word in {v for vs in VERBS.values() for v in vs}:
            return None
        raise AskError(f"I do not know a user called {word!r} in the activity you can see" + _known_users(vocabulary))
    return None


def _known_users(vocabulary: Vocabulary) -> str:
    users = [_user_label(u) for u in vocabulary.users[:5]]
    if not users:
        return " (there are no users in it)"
    more = len(vocabulary.users) - len(users)
    return "; known users: " + ", ".join(users) + (f" and {more} more" if more > 0 else "")


# ------------------------------------------------------------------------------------------------
# A model's proposal (``ask.model``): validated like any filter before it runs

#: The filter fields a proposal may set (not the projects: the reader's access fixes those).
PROPOSAL_FIELDS = ("start", "end", "users", "scopes", "activities", "item_ids", "was_impersonated", "is_system",
                   "search")
_PARAM_OF = {"start": "start_date", "end": "end_date", "search": "search_text"}


def answer_from_proposal(question: str, proposal: Any, vocabulary: Vocabulary) -> Answer:
    """A model's proposed filter as an :class:`Answer`: only :data:`PROPOSAL_FIELDS`, validated by
    :meth:`ActivityFilter.from_dict`, each user resolved to one the reader can see (else refused)."""
    if not isinstance(proposal, Mapping):
        raise AskError("the model proposed something that is not an object of filter fields")
    unknown = sorted(set(proposal) - set(PROPOSAL_FIELDS))
    if unknown:
        raise AskError(f"the model proposed fields a question may not set: {', '.join(map(str, unknown))}")
    data = dict(proposal)
    if data.get("users") is not None:
        users = data["users"] if isinstance(data["users"], list) else [data["users"]]
        resolved = []
        for given in users:
            if not isinstance(given, str):
                raise AskError(f"the model proposed a user that is not text: {given!r}")
            by_email = [u for u in vocabulary.users if (u.get("email") or "").lower() == given.strip().lower()]
            found = by_email or _users_named(vocabulary.users, given.strip().lower().split())
            if len(found) != 1:
                raise AskError(f"I do not know the user {given!r} in the activity you can see"
                               + _known_users(vocabulary) if not found else
                               f"{given!r} could be {', '.join(_user_label(u) for u in found)}: give the email")
            resolved.append(_user_key(found[0]))
        data["users"] = resolved
    try:
        activity_filter = ActivityFilter.from_dict(data, where="the model's filter")
    except FilterError as exc:
        raise AskError(f"the model proposed a filter that is not valid: {exc}") from None
    chips = []
    for name, value in activity_filter.to_dict().items():
        param = _PARAM_OF.get(name, name)
        for one in value if isinstance(value, list) else [value]:
            text = ("true" if one else "false") if isinstance(one, bool) else str(one)
            chips.append(Chip(param, text, f"{param}: {text}"))
    if not chips:
        raise AskError("the model proposed an empty filter: ask e.g. " + "; ".join(repr(e) for e in EXAMPLES))
    return Answer(question.strip(), activity_filter, tuple(chips), tuple(activity_filter.warnings()))


# ------------------------------------------------------------------------------------------------
# Answering from the lake


@dataclass(frozen=True)
class Result:
    """A question's filter, how many events match (in all, per scope and activity) and the newest rows."""

    answer: Answer
    total: int
    counts: tuple[tuple[str, str, int], ...]  # (scope, activity, events), most first
    rows: Any  # polars.DataFrame, newest first
    more: bool

    def to_dict(self) -> dict[str, Any]:
        from transforms.export import format_timestamps

        return {"question": self.answer.question, "filter": self.answer.filter.to_dict(),
                "chips": [{"param": c.param, "value": c.value, "label": c.label} for c in self.answer.chips],
                "warnings": list(self.answer.warnings), "total": self.total,
                "counts": [{"scope": s, "activity": a, "events": n} for s, a, n in self.counts],
                "rows": format_timestamps(self.rows).to_dicts()}


def ask(lake, question: str, *, where=None, fixed: Mapping[str, Any] | None = None, top: int = 10,
        now: datetime | None = None, propose=None, available: Mapping[str, Any] | None = None) -> Result | None:
    """Parse ``question`` against what ``where`` lets the reader see and run it; None without a table.

    ``propose`` (question, vocabulary, now) → a filter mapping: a model's proposal (``pipelines/askmodel.py``),
    used instead of the parser after :func:`answer_from_proposal` validated it. ``available``: the
    reader's :func:`~transforms.query.available_filters` when the caller has them (read under the same
    ``where`` and projects), else they are read here.

    ``where`` (the reader's visibility) bounds both the vocabulary (users of other tenants are unknown
    names) and the rows; ``fixed`` filter fields (the reader's project) override the question's."""
    import polars as pl

    from transforms.lake import ACTIVITY_LOG
    from transforms.query import available_filters, query

    condition = where if where is not None else pl.lit(True)
    if fixed and fixed.get("team_ids"):
        condition = condition & pl.col("team_id").is_in(list(fixed["team_ids"])).fill_null(False)
    if not lake.exists(ACTIVITY_LOG):
        return None
    vocabulary = Vocabulary.of(available if available is not None else available_filters(lake, condition))
    now = now or datetime.now(timezone.utc)
    if propose is not None:
        if not isinstance(question, str) or not question.strip() or len(question) > MAX_QUESTION:
            parse_question(question, vocabulary, now)  # the parser's reason for an empty or long question
        answer = answer_from_proposal(question, propose(question.strip(), vocabulary, now), vocabulary)
    else:
        answer = parse_question(question, vocabulary, now)
    if fixed:
        data = {**answer.filter.to_dict(), **fixed}
        answer = Answer(answer.question, ActivityFilter.from_dict(data), answer.chips, answer.warnings)
    frame = query(lake, answer.filter, where=where, now=now)
    if frame is None:
        return None
    counts, rows = pl.collect_all([
        frame.group_by("scope", "activity").agg(pl.len().alias("events")).sort(
            ["events", "scope", "activity"], descending=[True, False, False]),
        frame.head(top + 1)])
    total = int(counts["events"].sum()) if counts.height else 0
    return Result(answer, total, tuple(counts.iter_rows()), rows.head(top), rows.height > top)
