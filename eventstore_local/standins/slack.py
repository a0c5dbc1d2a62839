"""A local Slack incoming webhook: a real HTTP server on 127.0.0.1 that answers what `slack_sdk.webhook.WebhookClient`
(slack-sdk 3.48) posts the way Slack does, and records what it accepted.

What the client sends (read from `slack_sdk/webhook/client.py`): `POST <webhook URL>` with
`Content-Type: application/json;charset=utf-8` and a JSON object (`text`, `blocks`, `attachments`...; members
that are None are left out). Only 200 counts as success; any other status comes back as a `WebhookResponse`
(no exception), and its default retry handlers retry connection errors only.

Answers (Slack's, as text/html): 200 `ok`; 400 `invalid_payload` (not a JSON object), `no_text` (no text,
blocks or attachments), `invalid_blocks` (not a list of at most 50 objects with a `type`); 404 `no_service`
(another path: a revoked or mistyped webhook); 429 `rate_limited` with `Retry-After` (seconds) when a post comes
sooner than `1 / rate_per_second` after the last one accepted: Slack allows about one message per second
per webhook.

Not Slack's: `GET /received[?after=N]` lists the accepted posts with index > N and `next` (for
`eventstore alerts watch`); `fail_next` queues failures.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from eventstore_local.standins.arrivals import Arrivals
from eventstore_local.standins.http_server import LocalServer, QuietHandler

DEFAULT_PATH = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
RECEIVED_PATH = "/received"
MAX_BLOCKS = 50
_READ_CAP = 1_048_576


@dataclass(frozen=True)
class SlackPost:
    """One post the stand-in accepted, with when it arrived (`time.time()`)."""

    body: dict[str, Any]
    received_at: float

    @property
    def text(self) -> str | None:
        text = self.body.get("text")
        return text if isinstance(text, str) else None

    @property
    def blocks(self) -> list[dict[str, Any]]:
        blocks = self.body.get("blocks")
        return blocks if isinstance(blocks, list) else []


class _Handler(QuietHandler):
    def do_POST(self) -> None:
        self.server.owner._post(self)

    def do_GET(self) -> None:
        self.server.owner._get(self)


def _send(handler: QuietHandler, status: int, text: str, headers: dict[str, str] | None = None) -> None:
    body = text.encode()
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Type", "text/html" if text else "text/plain")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def check_post(document: Any) -> str | None:
    """Slack's error code for a webhook body, None when it would be posted."""
    if not isinstance(document, dict):
        return "invalid_payload"
    blocks = document.get("blocks")
    if blocks is not None and not (
        isinstance(blocks, list)
        and len(blocks) <= MAX_BLOCKS
        and all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks)
    ):
        return "invalid_blocks"
    text = document.get("text")
    if not (isinstance(text, str) and text.strip()) and not blocks and not document.get("attachments"):
        return "no_text"
    return None


class SlackWebhookStandIn(LocalServer):
    """One incoming webhook at `path`. `rate_per_second` (None: no limit) is Slack's one post per second."""

    handler = _Handler
    thread_name = "slack-stand-in"

    def __init__(
        self,
        *,
        path: str = DEFAULT_PATH,
        rate_per_second: float | None = 1.0,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(host, port)
        self.path = path
        self.rate_per_second = rate_per_second
        self._arrivals = Arrivals[SlackPost, int]("Slack posts")  # faults: the status to answer
        self._last_accepted: float | None = None  # time.monotonic() of the last post accepted

    @property
    def url(self) -> str:
        """The webhook URL (`EVENTSTORE_SLACK_WEBHOOK_URL`)."""
        return f"http://{self.host}:{self.port}{self.path}"

    @property
    def accepted(self) -> list[SlackPost]:
        return self._arrivals.items

    @property
    def texts(self) -> list[str | None]:
        return [p.text for p in self.accepted]

    @property
    def statuses(self) -> list[int]:
        """The status of every answer to a POST on the webhook's path, in order."""
        return self._arrivals.statuses

    def clear(self) -> None:
        self._arrivals.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[SlackPost]:
        """Block until at least `count` posts were accepted; `TimeoutError` otherwise."""
        return self._arrivals.wait_for(count, timeout)

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next `n` posts get `status` before any checking (and do not count toward the rate); `n=0`
        clears the failures still queued."""
        self._arrivals.fail_next(n, status)

    # the protocol

    def _post(self, handler: _Handler) -> None:
        received = time.time()
        if urlsplit(handler.path).path != self.path:
            _send(handler, 404, "no_service")
            return
        length = int(handler.headers.get("Content-Length") or 0)
        if not 0 <= length <= _READ_CAP:
            handler.close_connection = True
            _send(handler, 413, "request_too_large")
            return
        body = handler.rfile.read(length)
        try:
            document: Any = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            document = None
        with self._arrivals.changed:
            status, text, headers = self._decide(document, received)
            self._arrivals.answered(status)
        _send(handler, status, text, headers)

    def _decide(self, document: Any, received: float) -> tuple[int, str, dict[str, str] | None]:
        """The answer to one post; called under the lock, so the rate check and the recording are one step."""
        status = self._arrivals.next_fault()
        if status is not None:
            return status, "rate_limited" if status == 429 else "internal_error", None
        now = time.monotonic()
        if self.rate_per_second and self._last_accepted is not None:
            wait = 1.0 / self.rate_per_second - (now - self._last_accepted)
            if wait > 0:
                return 429, "rate_limited", {"Retry-After": str(max(1, math.ceil(wait)))}
        error = check_post(document)
        if error is not None:
            return 400, error, None
        self._arrivals.accept(SlackPost(document, received))
        self._last_accepted = now
        return 200, "ok", None

    def _get(self, handler: _Handler) -> None:
        url = urlsplit(handler.path)
        if url.path != RECEIVED_PATH:
            _send(handler, 404, "no_service")
            return
        posts, total = self._arrivals.page(url.query)
        page = [
            {"index": i, "receivedAt": datetime.fromtimestamp(p.received_at, UTC).isoformat(), "post": p.body}
            for i, p in posts
        ]
        body = json.dumps({"posts": page, "next": total}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
