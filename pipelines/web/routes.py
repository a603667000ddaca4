"""The page's routes: sign-in, the feed, an entry, a resource's history, embeddable views, exports, and
the viewer-token route for host applications.

Every route that shows rows depends on :func:`pipelines.api.deps.require_access` (the API's one access
rule: a page's session cookie or ``?token=`` resolves to the same key) and reads them through the API's
query code: :func:`pipelines.api.params.advanced_filter` (PostHog's query parameters, bounded),
:func:`transforms.query.query_page`, :func:`transforms.history.item_history`, the export run of
``pipelines/api/routes/exports.py``. Sign-in and sign-out show no rows and take no access.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import jinja2
import polars as pl
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict

from pipelines.api import params
from pipelines.api.audit import record_durably, record_read
from pipelines.api.deps import Access, ApiError, require_access
from pipelines.api.routes.exports import export_file, export_record, launch_export
from pipelines.api.state import ServerState, server
from pipelines.web import tokens
from pipelines.web.diff import changes_of, describe, parse_detail, show
from pipelines.web.sessions import COOKIE, SIGNIN_COOKIE, PageIdentity, csrf_matches, signing_secret
from transforms.filters import ActivityFilter, FilterError, after_cursor, encode_cursor
from transforms.history import item_history
from transforms.keys import READ_SCOPE, authenticate
from transforms.query import available_filters, query, query_page

TEMPLATES = Path(__file__).resolve().parent / "templates"
environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                 undefined=jinja2.StrictUndefined)
environment.filters["segment"] = lambda value: quote(str(value), safe="")  # one path segment of a URL
templates = Jinja2Templates(env=environment)

PAGE_ROWS = 50
MAX_FORM = 16_384
PRESETS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}
PRESET_LABELS = [("", "Any time"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days"),
                 ("90d", "Last 90 days"), ("custom", "Custom range")]
FILTER_PARAMETERS = ("preset", "start_date", "end_date", "users", "scopes", "activities", "was_impersonated",
                     "is_system", "item_ids", "search_text", "include_organization")
SIGNIN_REASONS = {"ended": "The session ended: sign in again.",
                  "revoked": "The key of this session was revoked: sign in with another key.",
                  "signed-out": "Signed out."}

router = APIRouter(include_in_schema=False)
api_router = APIRouter(tags=["viewer_tokens"])


# ------------------------------------------------------------------------------------------------
# Rendering


def identity_of(request: Request) -> PageIdentity:
    return request.state.page_identity


class Page:
    """What a template needs of the request: its access, links that keep the project and token."""

    def __init__(self, request: Request, access: Access | None, embed: bool = False) -> None:
        self.request, self.access, self.embed = request, access, embed
        self.identity: PageIdentity | None = getattr(request.state, "page_identity", None) if access else None

    @property
    def token(self) -> str | None:
        return self.identity.token if self.identity else None

    @property
    def csrf(self) -> str:
        return self.identity.session.csrf if self.identity and self.identity.session else ""

    def context_items(self) -> list[tuple[str, str]]:
        items = []
        if self.access is not None and self.access.project_id is not None and not self.token:
            items.append(("project", str(self.access.project_id)))
        if self.token:
            items.append(("token", self.token))
        return items

    def url(self, path: str, items: list[tuple[str, str]] | None = None, **named: Any) -> str:
        pairs = self.context_items() + list(items or []) + [(k, str(v)) for k, v in named.items() if v is not None]
        text = urlencode(pairs)
        return path + (f"?{text}" if text else "")

    def filter_items(self, without: tuple[str, ...] = ()) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.request.query_params.multi_items()
                if k in FILTER_PARAMETERS and k not in without and v != ""]


def render(request: Request, name: str, context: dict, status: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status)


# ------------------------------------------------------------------------------------------------
# Filters (the API's query parameters) and rows


def page_filter(request: Request, access: Access) -> ActivityFilter:
    """The feed's filter: the query string as ``advanced_activity_logs/`` reads it (a date preset turned
    into ``start_date``), limited to the page's project."""
    query_items = [(k, v) for k, v in request.query_params.multi_items() if k in FILTER_PARAMETERS]
    preset = request.query_params.get("preset", "")
    if preset and preset != "custom" and preset not in PRESETS:
        raise ApiError(400, f"must be one of {', '.join(p for p, _ in PRESET_LABELS if p)}", "preset")
    if preset in PRESETS:  # a preset wins over dates left in the form; without one, the dates are the range
        query_items = [(k, v) for k, v in query_items if k not in ("start_date", "end_date")]
        query_items.append(("start_date", (datetime.now(timezone.utc) - PRESETS[preset]).isoformat()))
    query_items = [(k, v) for k, v in query_items if k != "preset"]
    scoped = Request({**request.scope, "query_string": urlencode(query_items).encode()})
    fixed = {"team_ids": [access.project_id]} if access.project_id is not None else {}
    return params.advanced_filter(scoped, whole_day_end=True, **fixed)


def _time(value: datetime) -> dict:
    moment = value.astimezone(timezone.utc)
    return {"iso": moment.isoformat().replace("+00:00", "Z"), "utc": moment.strftime("%Y-%m-%d %H:%M:%S UTC")}


def view_row(row: dict) -> dict:
    first, last = row.get("actor_first_name"), row.get("actor_last_name")
    name = row.get("actor_name") or " ".join(p for p in (first, last) if p) or None
    return {"id": row["id"], "time": _time(row["created_at"]), "actor_name": name, "actor_email": row.get("actor_email"),
            "actor_uuid": row.get("actor_uuid"), "is_system": bool(row.get("is_system")),
            "was_impersonated": bool(row.get("was_impersonated")), "activity": row.get("activity"),
            "scope": row.get("scope"), "item_id": row.get("item_id"),
            "target": row.get("resource_name") or row.get("detail_name") or row.get("item_id"),
            "summary": row.get("summary"), "project_id": row.get("team_id")}


async def _slot(state: ServerState, work):
    def run():
        with state.query_slots:
            return work()
    return await run_in_threadpool(run)


def _feed(state: ServerState, request: Request, access: Access) -> dict:
    activity_filter = page_filter(request, access)
    after = params.text(request.query_params.get("after"), "after") or None

    def work():
        try:
            page = query_page(state.lake, activity_filter, limit=PAGE_ROWS, after=after, where=access.rows)
        except FilterError as exc:
            raise ApiError(400, exc.problem.message, exc.problem.where) from None
        if page is None:
            return [], None
        return [view_row(r) for r in page.rows.iter_rows(named=True)], page.next_cursor
    return {"filter": activity_filter, "work": work}


class PickerCache:
    """(activity_log version, visibility) → the filter form's choices, per app (``app.state.page_pickers``)."""

    def __init__(self) -> None:
        self.values: OrderedDict = OrderedDict()
        self.lock = threading.Lock()


def _pickers(state: ServerState, access: Access, cache: PickerCache) -> dict:
    """What the filter form offers (the API's ``available_filters``), once per table version and visibility."""
    cache_key = (state.log_version(), access.visibility)
    with cache.lock:
        found = cache.values.get(cache_key)
    if found is not None:
        return found
    where = access.rows
    if access.project_id is not None:
        where = where & (pl.col("team_id") == access.project_id).fill_null(False)
    found = available_filters(state.lake, where)
    with cache.lock:
        cache.values[cache_key] = found
        while len(cache.values) > 256:
            cache.values.popitem(last=False)
    return found


# ------------------------------------------------------------------------------------------------
# Sign-in and sign-out (no rows: no access)


def _safe_next(target: str | None) -> str:
    """A path of this server to go to after signing in; anything else (another host, a scheme) is /."""
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(c) < 32 for c in target) or len(target) > 4000):
        return "/"
    return target


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM:
        raise ApiError(400, f"the form is at most {MAX_FORM:,} bytes", "body")
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "not a form", "body") from None


def _secure(state: ServerState) -> bool:
    return state.base_url.lower().startswith("https://")


@router.get("/signin", response_class=HTMLResponse)
async def signin_form(request: Request, state: ServerState = Depends(server)):
    csrf = request.cookies.get(SIGNIN_COOKIE)
    fresh = not csrf or len(csrf) > 100
    if fresh:
        import secrets

        csrf = secrets.token_urlsafe(32)
    reason = SIGNIN_REASONS.get(request.query_params.get("reason", ""))
    response = render(request, "signin.html", {"page": Page(request, None), "csrf": csrf, "message": reason,
                                               "error": None, "next": _safe_next(request.query_params.get("next"))})
    if fresh:
        response.set_cookie(SIGNIN_COOKIE, csrf, httponly=True, samesite="strict", secure=_secure(state),
                            path="/signin")
    return response


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request, state: ServerState = Depends(server)):
    form = await _form(request)
    if not csrf_matches(request.cookies.get(SIGNIN_COOKIE), form.get("csrf")):
        raise ApiError(403, "the form's CSRF token does not match: reload the sign-in page and try again")
    next_path = _safe_next(form.get("next"))

    def refuse(status: int, error: str) -> HTMLResponse:
        return render(request, "signin.html", {"page": Page(request, None), "csrf": form["csrf"], "message": None,
                                               "error": error, "next": next_path}, status=status)

    token = (form.get("key") or "").strip()
    if not token:
        return refuse(400, "Paste an API key (alk_…).")
    key = await run_in_threadpool(authenticate, state.lake, token)
    if key is None:
        return refuse(401, "This is not an active API key.")
    if READ_SCOPE not in key.scopes:
        return refuse(403, f"This key does not have the scope {READ_SCOPE}.")
    request.app.state.page_sessions.delete(request.cookies.get(COOKIE))  # a session id never outlives a sign-in
    session_id, _ = request.app.state.page_sessions.create(key.key_id)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(COOKIE, session_id, httponly=True, samesite="strict", secure=_secure(state), path="/")
    response.delete_cookie(SIGNIN_COOKIE, path="/signin")
    return response


@router.post("/signout")
async def signout(request: Request):
    form = await _form(request)
    store = request.app.state.page_sessions
    session_id = request.cookies.get(COOKIE)
    session = store.get(session_id)
    if session is None:
        return RedirectResponse("/signin?reason=ended", status_code=303)
    if not csrf_matches(session.csrf, form.get("csrf")):
        raise ApiError(403, "the form's CSRF token does not match: reload the page and try again")
    store.delete(session_id)
    response = RedirectResponse("/signin?reason=signed-out", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# ------------------------------------------------------------------------------------------------
# The feed, an entry, a history


async def _feed_page(request: Request, access: Access, state: ServerState, embed: bool) -> HTMLResponse:
    feed = _feed(state, request, access)
    rows, cursor = await _slot(state, feed["work"])
    record_read(request, access, len(rows))
    page = Page(request, access, embed)
    more = page.url("/embed/feed" if embed else "/", page.filter_items(), after=cursor) if cursor else None
    if request.headers.get("hx-request") and request.query_params.get("after"):
        return render(request, "rows.html", {"page": page, "rows": rows, "more": more})
    pickers = await _slot(state, lambda: _pickers(state, access, request.app.state.page_pickers)) if not embed else None
    query = request.query_params
    return render(request, "feed.html", {
        "page": page, "rows": rows, "more": more, "pickers": pickers, "presets": PRESET_LABELS,
        "chosen": {name: query.getlist(name) for name in ("users", "scopes", "activities")},
        "q": {name: query.get(name, "") for name in FILTER_PARAMETERS},
        "projects": list(access.key.projects), "export_query": urlencode(page.context_items() + page.filter_items())})


@router.get("/", response_class=HTMLResponse)
async def feed(request: Request, access: Access = Depends(require_access), state: ServerState = Depends(server)):
    return await _feed_page(request, access, state, embed=False)


@router.get("/embed/feed", response_class=HTMLResponse)
async def embed_feed(request: Request, access: Access = Depends(require_access),
                     state: ServerState = Depends(server)):
    return await _feed_page(request, access, state, embed=True)


@router.get("/entry/{entry_id:path}", response_class=HTMLResponse)
async def entry(request: Request, entry_id: str, access: Access = Depends(require_access),
                state: ServerState = Depends(server)):
    params.text(entry_id, "entry_id")

    def work():
        frame = query(state.lake, ActivityFilter(), where=access.rows & (pl.col("id") == entry_id))
        return frame.head(1).collect().to_dicts() if frame is not None else []
    found = await _slot(state, work)
    record_read(request, access, len(found))
    if not found:
        raise ApiError(404, "not found")
    row = found[0]
    detail = parse_detail(row.get("detail"))
    raw = json.dumps(detail, indent=2, ensure_ascii=False, sort_keys=True)
    page = Page(request, access)
    return render(request, "entry.html", {"page": page, "row": view_row(row), "changes": changes_of(detail),
                                          "raw": raw, "context": detail.get("context"),
                                          "trigger": detail.get("trigger")})


def _history(state: ServerState, access: Access, scope: str, item_id: str, after: str | None) -> tuple[list, str | None]:
    found = item_history(state.lake, scope, item_id, team_id=access.project_id)
    if found is None:
        return [], None
    rows = found.rows.filter(access.rows)
    if after:
        try:
            rows = rows.filter(after_cursor(after))
        except FilterError as exc:
            raise ApiError(400, exc.problem.message, "after") from None
    more = rows.height > PAGE_ROWS
    rows = rows.head(PAGE_ROWS)
    out = []
    for row in rows.iter_rows(named=True):
        view = view_row(row)
        view["changes"] = []
        for change in row.get("changes") or []:
            before, after_value = _json(change.get("before")), _json(change.get("after"))
            view["changes"].append({"field": change.get("field") or "", "action": change.get("action") or "",
                                    "diff": describe(before, after_value, masked=bool(change.get("masked"))),
                                    "before": None if before is None else show(before),
                                    "after": None if after_value is None else show(after_value)})
        out.append(view)
    cursor = None
    if more and out:
        last = rows.row(rows.height - 1, named=True)
        cursor = encode_cursor(last["created_at"], last["id"])
    return out, cursor


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _history_page(request: Request, access: Access, state: ServerState, embed: bool) -> HTMLResponse:
    scope = params.text(request.query_params.get("scope"), "scope") or ""
    item_id = params.text(request.query_params.get("item_id"), "item_id") or ""
    if not scope or not item_id:
        raise ApiError(400, "a history needs a scope and an item_id", "scope" if not scope else "item_id")
    after = params.text(request.query_params.get("after"), "after") or None
    rows, cursor = await _slot(state, lambda: _history(state, access, scope, item_id, after))
    record_read(request, access, len(rows))
    page = Page(request, access, embed)
    path = "/embed/history" if embed else "/history"
    more = page.url(path, [("scope", scope), ("item_id", item_id)], after=cursor) if cursor else None
    return render(request, "history.html", {"page": page, "rows": rows, "more": more, "scope": scope,
                                            "item_id": item_id})


@router.get("/history", response_class=HTMLResponse)
async def history(request: Request, access: Access = Depends(require_access), state: ServerState = Depends(server)):
    return await _history_page(request, access, state, embed=False)


@router.get("/embed/history", response_class=HTMLResponse)
async def embed_history(request: Request, access: Access = Depends(require_access),
                        state: ServerState = Depends(server)):
    return await _history_page(request, access, state, embed=True)


# ------------------------------------------------------------------------------------------------
# Exports: the API's export run, started from the page's filters


def _session_only(request: Request) -> PageIdentity:
    identity = identity_of(request)
    if identity.session is None:
        raise ApiError(403, "exports need a signed-in session (a viewer token only reads)")
    return identity


@router.post("/export", response_class=HTMLResponse)
async def export_start(request: Request, access: Access = Depends(require_access),
                       state: ServerState = Depends(server)):
    identity = _session_only(request)
    form = await _form(request)
    if not csrf_matches(identity.session.csrf, form.get("csrf")):
        raise ApiError(403, "the form's CSRF token does not match: reload the page and try again")
    export_format = form.get("format", "csv")
    if export_format not in ("csv", "xlsx"):
        raise ApiError(400, "must be csv or xlsx", "format")
    activity_filter = page_filter(request, access)
    filters = {k: v for k, v in activity_filter.to_dict().items() if k != "team_ids"}
    started = await launch_export(request, state, access, export_format, filters)
    export_id = json.loads(started.body)["id"]
    page = Page(request, access)
    if request.headers.get("hx-request"):
        return render(request, "export_state.html", {"page": page, "export": {
            "id": export_id, "status": "queued", "format": export_format}})
    return RedirectResponse(page.url(f"/export/{export_id}"), status_code=303)


def _export_view(state: ServerState, access: Access, export_id: str) -> dict:
    record = export_record(state, access, export_id)
    return {"id": export_id, "status": record["status"], "format": record["format"], "error": record.get("error")}


@router.get("/export/{export_id}", response_class=HTMLResponse)
async def export_progress(request: Request, export_id: str, access: Access = Depends(require_access),
                          state: ServerState = Depends(server)):
    _session_only(request)
    view = await run_in_threadpool(_export_view, state, access, params.text(export_id, "export_id"))
    name = "export_state.html" if request.headers.get("hx-request") else "export.html"
    return render(request, name, {"page": Page(request, access), "export": view})


@router.get("/export/{export_id}/file")
def export_download(request: Request, export_id: str, access: Access = Depends(require_access),
                    state: ServerState = Depends(server)):
    _session_only(request)
    return export_file(request, state, access, params.text(export_id, "export_id"))


# ------------------------------------------------------------------------------------------------
# Viewer tokens for host applications (an admin key of the organization)


class ViewerTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project_id: int | None = None   # None: the whole organization
    ttl: str = "15m"


class ViewerToken(BaseModel):
    token: str
    expires_at: str
    organization_id: str
    project_id: int | None


@api_router.post("/api/organizations/{org_id}/viewer_tokens", response_model=ViewerToken, status_code=201)
async def viewer_token(request: Request, org_id: str, body: ViewerTokenRequest,
                       access: Access = Depends(require_access)):
    """A short-lived token for ``/``, ``/embed/feed`` and ``/embed/history`` (``?token=``) showing one
    project of the organization, or all of it."""
    try:
        ttl = tokens.parse_ttl(body.ttl)
    except ValueError as exc:
        raise ApiError(400, str(exc), "ttl") from None
    if body.project_id is not None:
        rule = request.app.state.access_rule
        if not 0 <= body.project_id < 2**63:
            raise ApiError(404, "not found")
        organizations = await run_in_threadpool(rule.organizations_of, body.project_id)
        if not rule.may_read_project(access.key, body.project_id, organizations):
            raise ApiError(404, "not found")
    token, expires = tokens.mint(signing_secret(request.app.state.page_secret), access.organization_id, body.project_id, ttl,
                                 issuer=access.key.key_id)
    await run_in_threadpool(record_durably, request, access, "viewer_token_issued", access.key.key_id,
                            {"project_id": body.project_id, "expires_at": expires, "ttl_seconds": ttl})
    return {"token": token, "expires_at": datetime.fromtimestamp(expires, timezone.utc).isoformat().replace(
        "+00:00", "Z"), "organization_id": access.organization_id, "project_id": body.project_id}


def page_error(request: Request, exc: ApiError) -> Response:
    """An error on a page: the sign-in form for a missing session, else the page of the error."""
    from pipelines.web.sessions import SignInRequired

    if isinstance(exc, SignInRequired) and not request.url.path.startswith("/embed/"):
        reason = "revoked" if "revoked" in exc.detail else ("ended" if "ended" in exc.detail else "")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        location = "/signin?" + urlencode([("next", target)] + ([("reason", reason)] if reason else []))
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": location})
        return RedirectResponse(location, status_code=303)
    response = render(request, "error.html", {"page": Page(request, None, request.url.path.startswith("/embed/")),
                                              "status": exc.status, "detail": exc.detail, "attr": exc.attr},
                      status=exc.status)
    response.headers.update(exc.headers)
    return response
