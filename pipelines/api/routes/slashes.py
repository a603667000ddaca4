"""PostHog's paths answer with and without their trailing slash (``activity_log`` and ``activity_log/``),
directly, never with a 307 to the other form: :func:`route` registers a path and its twin (the twin is
left out of the OpenAPI document, which names PostHog's form)."""

from __future__ import annotations

from typing import Any, Callable

from fastapi import APIRouter


def twin(path: str) -> str:
    return path[:-1] if path.endswith("/") else path + "/"


def route(router: APIRouter, method: str, path: str, **kwargs: Any) -> Callable:
    """``@route(router, "GET", "/api/…/activity_log/", response_model=…)``: both forms, one endpoint."""

    def register(endpoint: Callable) -> Callable:
        router.add_api_route(path, endpoint, methods=[method], **kwargs)
        router.add_api_route(twin(path), endpoint, methods=[method], include_in_schema=False, **kwargs)
        return endpoint

    return register
