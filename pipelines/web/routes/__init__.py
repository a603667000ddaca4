"""The page's routes, one module per resource: sign-in, the feed and entries, histories, exports; and
the viewer-token route of the API. Shared rendering and helpers are :mod:`pipelines.web.pages`."""

from __future__ import annotations

from fastapi import APIRouter

from pipelines.web.pages import PickerCache, page_error
from pipelines.web.routes import exports, feed, history, signin, viewer_tokens

router = APIRouter(include_in_schema=False)
for module in (signin, feed, history, exports):
    router.include_router(module.router)
api_router = viewer_tokens.router

__all__ = ["PickerCache", "api_router", "page_error", "router"]
