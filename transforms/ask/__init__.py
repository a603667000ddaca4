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

The words and the vocabulary live in :mod:`transforms.ask.vocabulary`, dates in
:mod:`transforms.ask.dates`, the parser in :mod:`transforms.ask.parse`, a model's proposal and answering
from the lake in :mod:`transforms.ask.answer`.
"""

from __future__ import annotations

from transforms.ask.answer import PROPOSAL_FIELDS, Result, answer_from_proposal, ask
from transforms.ask.parse import parse_question
from transforms.ask.vocabulary import EXAMPLES, MAX_QUESTION, Answer, AskError, Chip, Vocabulary, scope_aliases

__all__ = ["EXAMPLES", "MAX_QUESTION", "PROPOSAL_FIELDS", "Answer", "AskError", "Chip", "Result", "Vocabulary",
           "answer_from_proposal", "ask", "parse_question", "scope_aliases"]
