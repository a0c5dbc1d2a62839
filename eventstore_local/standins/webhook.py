"""A local CloudEvents webhook subscriber: a real HTTP server on 127.0.0.1 that does what a careful
subscriber does, for tests and local runs.

- Answers the validation handshake (`OPTIONS` with `WebHook-Request-Origin`) with
  `WebHook-Allowed-Origin` when the origin is allowed, and 403 otherwise.
- Verifies each delivery's Standard Webhooks signature (401 when it does not match) and takes
  `application/cloudevents-batch+json` (an array) or `application/cloudevents+json` (one event).
- Records every event taken, with its arrival time; can be told to fail a share of its requests.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from eventstore.feed import signing
from eventstore_local.standins.http_server import LocalServer, QuietHandler


@dataclass(frozen=True)
class Delivery:
    event: dict[str, Any]
    arrived_at: float
    message_id: str


class _Handler(QuietHandler):
    def do_OPTIONS(self) -> None:
        self.server.owner._handshake(self)

    def do_POST(self) -> None:
        self.server.owner._deliver(self)


def _answer(
    handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str] | None = None, text: str = ""
) -> None:
    body = text.encode()
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class WebhookReceiver(LocalServer):
    def __init__(
        self,
        secret: str,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        allowed_origins: tuple[str, ...] = ("*",),
        failure_rate: float = 0.0,
        failure_status: int = 500,
        seed: int | None = 0,
    ) -> None:
        super().__init__(host, port)
        self.secret = secret
        self.allowed_origins = allowed_origins
        self.failure_rate = failure_rate
        self.failure_status = failure_status
        self._rng = random.Random(seed)
        self._cond = threading.Condition()
        self._deliveries: list[Delivery] = []
        self.handshakes: list[str] = []
        self.refused_ids: set[str] = set()
        """Batches holding one of these event ids are answered 422 (a subscriber that rejects an event)."""
        self.statuses: list[int] = []
        self.answered_at: list[float] = []

    handler = _Handler
    thread_name = "webhook-receiver"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/events"

    @property
    def deliveries(self) -> list[Delivery]:
        with self._cond:
            return list(self._deliveries)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [d.event for d in self.deliveries]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._deliveries) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self._deliveries)} of {count} events arrived within {timeout} s")
                self._cond.wait(remaining)
            return [d.event for d in self._deliveries]

    def _handshake(self, handler: _Handler) -> None:
        origin = handler.headers.get("WebHook-Request-Origin", "")
        with self._cond:
            self.handshakes.append(origin)
        if origin and ("*" in self.allowed_origins or origin in self.allowed_origins):
            _answer(handler, 200, {"WebHook-Allowed-Origin": origin, "Allow": "POST, OPTIONS"})
        else:
            _answer(handler, 403, text="origin not allowed")

    def _status(self, status: int) -> int:
        with self._cond:
            self.statuses.append(status)
            self.answered_at.append(time.time())
        return status

    def _deliver(self, handler: _Handler) -> None:
        arrived = time.time()
        body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        with self._cond:
            fail = self.failure_rate > 0 and self._rng.random() < self.failure_rate
        if fail:
            _answer(handler, self._status(self.failure_status), text="injected failure")
            return
        try:
            signing.verify(self.secret, dict(handler.headers.items()), body)
        except signing.SignatureMismatch as exc:
            _answer(handler, self._status(401), text=str(exc))
            return
        media_type = handler.headers.get("Content-Type", "").split(";")[0].strip().lower()
        try:
            document = json.loads(body)
        except ValueError:
            _answer(handler, self._status(400), text="not JSON")
            return
        events = [document] if media_type == "application/cloudevents+json" else document
        if media_type not in ("application/cloudevents+json", "application/cloudevents-batch+json") or not (
            isinstance(events, list) and all(isinstance(e, dict) and "id" in e for e in events)
        ):
            _answer(handler, self._status(415 if media_type else 400), text="send CloudEvents")
            return
        if self.refused_ids & {str(e["id"]) for e in events}:
            _answer(handler, self._status(422), text="an event of this batch is refused")
            return
        message_id = handler.headers.get(signing.ID_HEADER, "")
        with self._cond:
            self._deliveries.extend(Delivery(e, arrived, message_id) for e in events)
            self._cond.notify_all()
        _answer(handler, self._status(200))
