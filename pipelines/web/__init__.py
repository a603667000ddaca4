"""The activity log page of ``activitylog serve``: server-rendered HTML (Jinja2, autoescaped) with htmx.

    /                     the feed (filters in the query string; cursor pages)
    /entry/{id}           one entry: each changed field's before and after, the raw payload
    /history              one resource's changes (?scope=&item_id=)
    /embed/feed, /embed/history   the same without the page's chrome, for iframes
    /signin, /signout     a session from a pasted API key
    /export, /export/{id}[/file]  the API's export run from the current filters
    /ask                  a question in plain language → the feed's filter as chips, counts, rows (ask.py)
    POST /api/organizations/{org_id}/viewer_tokens   short-lived ?token= links (an admin key)

:func:`mount_web` adds it to an app made by :func:`pipelines.api.create_app`. Every page carries a
Content-Security-Policy (scripts and styles from this server only, no inline script), ``nosniff``,
``Referrer-Policy: no-referrer`` and ``Cache-Control: no-store``; embeddable views may be framed by
``ACTIVITYLOG_PAGE_FRAME_ANCESTORS`` (default ``'self'``), the other pages by nobody.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from pipelines.api.deps import ApiError
from pipelines.api.headers import PathHeaders
from pipelines.web import tokens
from pipelines.web.sessions import TTL_ENV, PageKeys, SessionStore, session_ttl

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_URL = "/page-static"
FRAME_ANCESTORS_ENV = "ACTIVITYLOG_PAGE_FRAME_ANCESTORS"
NOT_PAGES = ("/api/", "/docs", "/redoc", "/openapi.json", "/static/")
BASE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "form-action 'self'; base-uri 'none'; object-src 'none'")


def is_page(path: str) -> bool:
    return not path.startswith(NOT_PAGES)


def mount_web(app: FastAPI) -> None:
    """The page's routes, static files, sessions and headers on ``app`` (after its API routes)."""
    from pipelines.web.ask import router as ask_router
    from pipelines.web.routes import PickerCache, api_router, page_error, router

    state = app.state.server
    app.state.page_sessions = SessionStore(session_ttl(os.environ.get(TTL_ENV)))
    app.state.page_secret = tokens.Secret()  # read or made at the first viewer token
    app.state.page_pickers = PickerCache()
    app.state.page_keys = PageKeys(state.lake, app.state.page_sessions, app.state.page_secret)
    frame_ancestors = os.environ.get(FRAME_ANCESTORS_ENV, "'self'").strip() or "'self'"
    if any(c in frame_ancestors for c in ";,\r\n"):
        raise ValueError(f"{FRAME_ANCESTORS_ENV}: sources separated by spaces, without ';' or ','")

    api_error = app.exception_handlers[ApiError]

    async def _error(request: Request, exc: ApiError):
        if is_page(request.url.path):
            return page_error(request, exc)
        return await api_error(request, exc)

    app.add_exception_handler(ApiError, _error)

    def page_headers(path: str) -> list[tuple[bytes, bytes]]:
        if not is_page(path):
            return []
        policy = BASE_CSP + f"; frame-ancestors {frame_ancestors if path.startswith('/embed/') else chr(39) + 'none' + chr(39)}"
        headers = [(b"content-security-policy", policy.encode()), (b"x-content-type-options", b"nosniff"),
                   (b"referrer-policy", b"no-referrer")]
        if not path.startswith(STATIC_URL + "/"):
            headers.append((b"cache-control", b"no-store"))
        return headers

    app.add_middleware(PathHeaders, headers_for=page_headers)

    app.include_router(api_router)
    app.include_router(router)
    app.include_router(ask_router)
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="page-static")
