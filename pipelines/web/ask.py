"""The page's "Ask in plain language" box: ``GET /ask?q=…`` turns a question into the feed's filter
(:func:`transforms.ask.ask`), shown as editable chips (a GET form to ``/`` prefilled with the feed's own
query parameters), with the counts and the newest rows.

The question is read against what the key can see (``access.rows`` bounds the vocabulary and the
rows; the page's project is fixed), so a question never widens a key's view: a user of another
organization is an unknown name. With ``ask.model`` configured, the model's proposal replaces the parser
and is validated the same way (:func:`transforms.ask.answer_from_proposal`).
"""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from pipelines.api.audit import record_read
from pipelines.api.deps import Access, ApiError, require_access
from pipelines.api.state import ServerState, server
from transforms.ask import MAX_QUESTION, AskError, ask

router = APIRouter(include_in_schema=False)
TOP_ROWS = 10
#: "last N" periods that are one of the feed's date presets.
PRESET_OF = {"last 24 hours": "24h", "last 1 day": "24h", "last 7 days": "7d", "last 1 week": "7d",
             "last 30 days": "30d", "last 1 month": "30d", "last 90 days": "90d"}


def _proposer(app):
    """The ``ask.model`` endpoint of the configuration file, read once per app (None: the parser)."""
    if not hasattr(app.state, "ask_propose"):
        from pipelines.askmodel import model_proposer
        from pipelines.config import AskConfig
        from pipelines.config.loader import load_section

        config = load_section("ask", AskConfig)
        app.state.ask_propose = model_proposer(config.model) if config.model else None
    return app.state.ask_propose


def feed_chips(chips) -> list[dict]:
    """The answer's chips as the feed form's fields: a preset where one fits, dates as the form's days."""
    out = []
    for chip in chips:
        param, value = chip.param, chip.value
        if param == "start_date" and chip.label in PRESET_OF:
            param, value = "preset", PRESET_OF[chip.label]
        elif param in ("start_date", "end_date"):
            value = value[:10]
        out.append({"param": param, "value": value, "label": chip.label})
    return out


@router.get("/ask", response_class=HTMLResponse)
async def ask_page(request: Request, access: Access = Depends(require_access), state: ServerState = Depends(server)):
    from pipelines.web.pages import Page, pickers, render, slot, view_row

    question = request.query_params.get("q", "")
    if len(question) > MAX_QUESTION:
        raise ApiError(400, f"at most {MAX_QUESTION} characters", "q")
    page = Page(request, access)
    context = {"page": page, "question": question, "error": None, "result": None, "chips": [], "rows": [],
               "more": None}
    if not question.strip():
        return render(request, "ask.html", context)
    fixed = {"team_ids": [access.project_id]} if access.project_id is not None else None
    try:
        propose = _proposer(request.app)
    except ValueError as exc:  # ConfigError: the ask section of the configuration file
        raise ApiError(503, f"the ask section of the configuration cannot be used: {exc}", "ask") from None

    def work():
        available = pickers(state, access, request.app.state.page_pickers)  # cached per table version
        return ask(state.lake, question, available=available, where=access.rows, fixed=fixed, top=TOP_ROWS,
                   now=datetime.now(timezone.utc), propose=propose)
    try:
        result = await slot(state, work)
    except AskError as exc:
        context["error"] = str(exc)
        return render(request, "ask.html", context, status=400)
    if result is not None:
        record_read(request, access, result.rows.height)  # audit.reads: the question is the filter
        chips = feed_chips(result.answer.chips)
        context.update(result=result, chips=chips, rows=[view_row(r) for r in result.rows.iter_rows(named=True)],
                       feed_url=page.url("/", [(c["param"], c["value"]) for c in chips]))
    return render(request, "ask.html", context)
