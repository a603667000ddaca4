"""What the server holds for its routes: the lake, the export store and runner, the page cache and the
public base URL. Built once by :func:`pipelines.api.app.create_app` into ``app.state.server``; routes
get it through the :func:`server` dependency."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlencode

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from pipelines.api.audit import record_read
from pipelines.api.deps import Access
from pipelines.api.exports import ExportRunner, ExportStore
from transforms import jsontext
from transforms.lake import ACTIVITY_LOG, Lake

PUBLIC_URL_ENV = "ACTIVITYLOG_PUBLIC_URL"
CACHED_PAGES = 512


@dataclass
class ServerState:
    lake: Lake
    exports: ExportStore
    runner: ExportRunner
    base_url: str = ""  # what links start with: ACTIVITYLOG_PUBLIC_URL, never the request's Host
    use_cache: bool = True
    query_slots: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(
        int(os.environ.get("ACTIVITYLOG_API_QUERY_SLOTS", "2"))))
    _pages: OrderedDict = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seen: dict = field(default_factory=lambda: {"at": 0.0, "version": None})

    def log_version(self) -> int | None:
        """activity_log's version, looked up at most twice a second (a new version shows within 0.5 s)."""
        now = time.monotonic()
        if now - self._seen["at"] > 0.5:
            self._seen.update(at=now, version=self.lake.version(ACTIVITY_LOG))
        return self._seen["version"]

    def link(self, request: Request, params: list[tuple[str, str]], path: str | None = None) -> str:
        """A link to this server: the configured base URL (never the request's Host header) + path."""
        query_text = urlencode(params)
        return self.base_url + (path or request.url.path) + (f"?{query_text}" if query_text else "")

    async def cached(self, request: Request, access: Access, compute: Callable[[], dict]) -> Response:
        """The page as JSON bytes (serialised once, not per request). Pages of one snapshot never change:
        they are cached per activity_log version, keyed by path, query and the access's visibility
        (organization, project, hidden logins), never the Host header. Access was checked before the
        lookup. A hit is answered on the event loop; a miss computes in the thread pool."""
        cache_key = (request.url.path, request.url.query, access.visibility, self.log_version())
        with self._lock:
            page = self._pages.get(cache_key) if self.use_cache else None
            if page is not None:
                self._pages.move_to_end(cache_key)
        hit = page is not None
        if page is None:
            def run() -> tuple[bytes, int | None]:
                with self.query_slots:  # a few queries at a time: Polars already uses every core for each
                    result = compute()
                    rows = len(result["results"]) if isinstance(result.get("results"), list) else None
                    return jsontext.encode(result).encode(), rows

            page = await run_in_threadpool(run)
            with self._lock:
                self._pages[cache_key] = page
                while len(self._pages) > CACHED_PAGES:
                    self._pages.popitem(last=False)
        body, rows = page
        record_read(request, access, rows, cached=hit)  # audit.reads: the route, key, filter, row count
        return Response(body, media_type="application/json")


def server(request: Request) -> ServerState:
    """The dependency: the server's state."""
    return request.app.state.server
