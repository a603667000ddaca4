"""Sign-in and sign-out: a key pasted into a form becomes a session cookie. No rows, no access."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from fastapi.responses import RedirectResponse

from pipelines.api.deps import ApiError
from pipelines.api.state import ServerState, server
from pipelines.web.pages import SIGNIN_REASONS, Page, read_form, render, safe_next, secure
from pipelines.web.sessions import COOKIE, SIGNIN_COOKIE, csrf_matches
from transforms.keys import READ_SCOPE, authenticate

router = APIRouter(include_in_schema=False)


@router.get("/signin", response_class=HTMLResponse)
async def signinread_form(request: Request, state: ServerState = Depends(server)):
    csrf = request.cookies.get(SIGNIN_COOKIE)
    fresh = not csrf or len(csrf) > 100
    if fresh:
        import secrets

        csrf = secrets.token_urlsafe(32)
    reason = SIGNIN_REASONS.get(request.query_params.get("reason", ""))
    response = render(request, "signin.html", {"page": Page(request, None), "csrf": csrf, "message": reason,
                                               "error": None, "next": safe_next(request.query_params.get("next"))})
    if fresh:
        response.set_cookie(SIGNIN_COOKIE, csrf, httponly=True, samesite="strict", secure=secure(state),
                            path="/signin")
    return response


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request, state: ServerState = Depends(server)):
    form = await read_form(request)
    if not csrf_matches(request.cookies.get(SIGNIN_COOKIE), form.get("csrf")):
        raise ApiError(403, "the form's CSRF token does not match: reload the sign-in page and try again")
    next_path = safe_next(form.get("next"))

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
    response.set_cookie(COOKIE, session_id, httponly=True, samesite="strict", secure=secure(state), path="/")
    response.delete_cookie(SIGNIN_COOKIE, path="/signin")
    return response


@router.post("/signout")
async def signout(request: Request):
    form = await read_form(request)
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
