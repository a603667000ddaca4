"""A real HTTP server on 127.0.0.1 for delivery tests: records every request and answers from a script.

    with Receiver() as server:
        server.respond("/hook", (500, {}, "boom"), (200, {}, "ok"))   # then 200 for ever after
        ... deliver to server.url("/hook") ...
        server.requests("/hook")   # [Request(path, headers, body, at), ...]
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self):
        return json.loads(self.body)


class Receiver:
    def __init__(self) -> None:
        self._log: list[Request] = []
        self._script: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver._log.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                 body, time.monotonic()))
                    script = receiver._script[self.path]
                    status, headers, text = script.popleft() if script else (200, {}, "ok")
                if status is None:  # simulate a server that never answers (client timeout)
                    time.sleep(float(text))
                    status, headers, text = 200, {}, "late"
                data = text.encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def respond(self, path: str, *responses: tuple) -> None:
        with self._lock:
            self._script[path].extend(responses)

    def requests(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self._log if path is None or r.path == path]
