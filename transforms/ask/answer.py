"""A model's proposal validated like any filter, and answering a question from the lake."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from transforms.ask.parse import _known_users, parse_question
from transforms.ask.vocabulary import (
    EXAMPLES,
    MAX_QUESTION,
    Answer,
    AskError,
    Chip,
    Vocabulary,
    _user_key,
    _user_label,
    _users_named,
)
from transforms.filters import ActivityFilter, FilterError

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
