"""The publisher client (``activitylog.client.Publisher``) against the publisher API served for real: it
retries until a late server answers, retries a lost response with the same Idempotency-Key so nothing is
stored twice, and reports a refused batch instead of dropping it."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.helpers.events import make_event
from tests.helpers.publish import ids_in_spool, serve
from tests.helpers.servers import LOOPBACK, free_port


pytestmark = pytest.mark.local_lake


def test_publisher_retries_until_a_late_server_answers_without_duplicates(world):
    from activitylog.client import Publisher

    port = free_port()
    late: dict = {}
    starter = threading.Timer(1.5, lambda: late.update(zip(("url", "server"), serve(world, "late", port))))
    publisher = Publisher(f"http://{LOOPBACK}:{port}", world["keys"]["w1"], project_id=1, batch_size=40,
                          flush_interval=0.2, max_retry_seconds=120)
    try:
        starter.start()
        for i in range(100):
            publisher.publish(make_event(id=f"late-{i}", created_at="2024-03-13T10:00:00Z"))
        publisher.flush(timeout=180)
    finally:
        starter.join()
        publisher.close(timeout=60)
        if "server" in late:
            late["server"].stop()
    assert [len(r.events) for r in publisher.results] == [40, 40, 20]
    assert publisher.results[0].attempts > 1  # refused at first, then answered
    assert all(r.delivered and r.status == 202 for r in publisher.results)
    assert publisher.rejected == [] and publisher.failed == []
    ids = ids_in_spool(world, "late-")
    assert sorted(ids) == sorted(f"late-{i}" for i in range(100))  # each once


class _DroppingProxy(BaseHTTPRequestHandler):
    """Forwards requests to the server, but drops the connection instead of the first answer (a
    response lost on the way back)."""

    upstream = ""
    dropped = 0

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type",
                                                                          "idempotency-key")}
        answer = httpx.post(self.upstream + self.path, content=body, headers=headers, timeout=60)
        if _DroppingProxy.dropped == 0:
            _DroppingProxy.dropped += 1
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(answer.status_code)
        for name in ("content-type", "idempotent-replayed"):
            if name in answer.headers:
                self.send_header(name, answer.headers[name])
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, *args):
        pass


def test_publisher_retries_a_lost_response_with_the_same_key_and_nothing_is_stored_twice(world):
    from activitylog.client import Publisher

    _DroppingProxy.upstream, _DroppingProxy.dropped = world["url"], 0
    proxy = ThreadingHTTPServer((LOOPBACK, 0), _DroppingProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        with Publisher(f"http://{LOOPBACK}:{proxy.server_address[1]}", world["keys"]["w1"], project_id=1,
                       batch_size=1000) as publisher:
            for i in range(30):
                publisher.publish(make_event(id=f"lost-{i}", created_at="2024-03-13T10:00:00Z"))
            publisher.publish(make_event(id="lost-bad", created_at="2024-03-13T10:00:00"))
    finally:
        proxy.shutdown()
    assert _DroppingProxy.dropped == 1
    [result] = publisher.results
    assert result.attempts == 2 and result.status == 202 and result.body["accepted"] == 30
    assert publisher.rejected == [(publisher.results[0].events[30], "created_at has no timezone")]
    assert sorted(ids_in_spool(world, "lost-")) == sorted(f"lost-{i}" for i in range(30))  # the retry wrote nothing


def test_publisher_reports_a_refused_batch_instead_of_dropping_it(world):
    from activitylog.client import PublishError, Publisher

    publisher = Publisher(world["url"], world["keys"]["r1"], project_id=1)
    publisher.publish(make_event(id="refused-1", created_at="2024-03-13T10:00:00Z"))
    with pytest.raises(PublishError) as raised:
        publisher.close(timeout=60)
    [batch] = raised.value.batches
    assert batch.status == 403 and batch.events[0]["id"] == "refused-1"
    assert "activity_log:write" in batch.error
    with pytest.raises(RuntimeError, match="closed"):
        publisher.publish(make_event())
    with pytest.raises(ValueError, match="exactly one of project_id and organization_id"):
        Publisher(world["url"], "t")
