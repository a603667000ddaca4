"""Parsing a question against a :class:`~transforms.ask.vocabulary.Vocabulary` into the filter it
means, or :class:`~transforms.ask.vocabulary.AskError` naming what was not understood."""

from __future__ import annotations

import difflib
import re
from datetime import datetime, timezone
from typing import Sequence

from transforms.ask.dates import _dates, _iso
from transforms.ask.vocabulary import (
    EXAMPLES,
    MAX_QUESTION,
    STOPWORDS,
    VERBS,
    Answer,
    AskError,
    Chip,
    Vocabulary,
    _user_key,
    _user_label,
    _users_named,
    scope_aliases,
)
from transforms.filters import ActivityFilter, FilterError


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
