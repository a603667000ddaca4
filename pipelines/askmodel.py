"""The ``ask.model`` endpoint: an OpenAI-compatible ``POST {url}/chat/completions`` that proposes the
filter of a question as a JSON object (:func:`model_proposer`). The proposal is only a proposal:
:func:`transforms.ask.answer_from_proposal` validates it with the filter model (and its users against
what the reader can see) before anything runs.

What leaves the server: the question, the time, and the scope and activity names the reader can see —
never a user, a row or a key.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from transforms.ask import PROPOSAL_FIELDS, AskError, Vocabulary

MAX_ANSWER = 64 * 1024
SYSTEM = (
    "You turn a question about an activity log into a filter. Answer with one JSON object and nothing "
    "else. Allowed keys (all optional): start, end (ISO-8601 UTC timestamps), users (emails or names "
    "exactly as written in the question), scopes, activities (only from the lists below), item_ids, "
    "was_impersonated, is_system (true/false), search (text). The current time is {now}.\n"
    "Scopes: {scopes}\nActivities: {activities}")


def model_proposer(config) -> Callable[[str, Vocabulary, datetime], Mapping[str, Any]]:
    """A function (question, vocabulary, now) → the model's proposed filter mapping, for ``ask()``."""
    import httpx

    url = config.url + "/chat/completions"
    headers = {"Authorization": f"Bearer {config.api_key.value('ask.model.api_key')}"} if config.api_key else {}

    def propose(question: str, vocabulary: Vocabulary, now: datetime) -> Mapping[str, Any]:
        body = {"model": config.model, "temperature": 0, "response_format": {"type": "json_object"},
                "messages": [
                    {"role": "system", "content": SYSTEM.format(
                        now=now.astimezone(timezone.utc).isoformat(), scopes=", ".join(vocabulary.scopes),
                        activities=", ".join(vocabulary.activities))},
                    {"role": "user", "content": question}]}
        try:
            response = httpx.post(url, json=body, headers=headers, timeout=config.timeout, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise AskError(f"the model at {config.url} did not answer ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise AskError(f"the model at {config.url} answered HTTP {response.status_code}")
        if len(response.content) > MAX_ANSWER:
            raise AskError(f"the model's answer is larger than {MAX_ANSWER} bytes")
        try:
            content = response.json()["choices"][0]["message"]["content"]
            proposal = json.loads(content)
        except (ValueError, KeyError, IndexError, TypeError):
            raise AskError("the model's answer is not a chat completion whose message is a JSON object") from None
        if not isinstance(proposal, dict):
            raise AskError("the model proposed JSON that is not an object of filter fields")
        unknown = sorted(set(proposal) - set(PROPOSAL_FIELDS))
        if unknown:
            raise AskError(f"the model proposed fields a question may not set: {', '.join(unknown)}")
        return proposal
    return propose
