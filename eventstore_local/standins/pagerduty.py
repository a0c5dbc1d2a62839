"""A local PagerDuty Events API v2: a real HTTP server on 127.0.0.1 that takes what `pagerduty.EventsApiV2Client`
(pagerduty 7.2) sends, checks it the way PagerDuty documents, and records what it accepted.

What the client sends (read from `pagerduty/events_api_v2_client.py`, `api_client.py`, `auth_method.py`):

- `POST {base_url}/v2/enqueue` (change events: `/v2/change/enqueue`, not served here). The base URL must be
  https for the library (`ApiClient.url`'s setter); `eventstore.alerts.channels.PagerDuty` allows http for
  127.0.0.1 only, so this stand-in stays plain HTTP.
- Headers: `Content-Type: application/json`, `User-Agent: python-pagerduty/7.2.0 httpx2/... Python/3.11`;
  no auth header: the routing key travels in the body (`RoutingKeyAuthMethod`).
- Body: `{"routing_key", "event_action": "trigger"|"acknowledge"|"resolve", "dedup_key"?, "payload"?: {"summary",
  "source", "severity", "custom_details"?}, "links"?, "images"?}`.
- Success is any 2xx whose JSON body has `dedup_key`; 4xx and 5xx raise `pagerduty.HttpError` (401 at once);
  by default the client itself retries 429 forever and 500/502/503/504 a few times.

Answers (PagerDuty's): 202 `{"status": "success", "message": "Event processed", "dedup_key"}`; 400
`{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}`; 429 with an empty body.
Only the configured routing key is taken (a 32-character key that is not it: 400 "Invalid routing key").

Not PagerDuty's: `GET /received[?after=N]` lists the accepted events with index > N and `next` (for
`eventstore alerts watch` in another process); `fail_next` queues failures (429 or 5xx, optional Retry-After).

    with PagerDutyStandIn() as pd:
        PagerDuty(pd.routing_key, base_url=pd.base_url).trigger("k", "down", "eventstore", "error")
        pd.wait_for(1)
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from eventstore_local.standins.arrivals import Arrivals, Fault
from eventstore_local.standins.http_server import LocalServer, QuietHandler, send_json

ENQUEUE_PATH = "/v2/enqueue"
RECEIVED_PATH = "/received"
DEFAULT_ROUTING_KEY = "e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5"
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
_READ_CAP = 1_048_576


@dataclass(frozen=True)
class PagerDutyEvent:
    """One event the stand-in accepted (routing key removed), with when it arrived (`time.time()`)."""

    event: dict[str, Any]
    dedup_key: str
    received_at: float

    @property
    def action(self) -> str:
        return str(self.event["event_action"])


class _Handler(QuietHandler):
    def do_POST(self) -> None:
        self.server.owner._post(self)

    def do_GET(self) -> None:
        self.server.owner._get(self)


def _invalid(*errors: str) -> dict[str, Any]:
    return {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)}


def check_event(document: Any, routing_key: str) -> list[str]:
    """PagerDuty's complaints about one event, none when it is valid."""
    if not isinstance(document, dict):
        return ["Event object must be a JSON object"]
    errors: list[str] = []
    key = document.get("routing_key")
    if not isinstance(key, str) or not key:
        errors.append("'routing_key' is missing or blank")
    elif len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    elif key != routing_key:
        errors.append("Invalid routing key")
    action = document.get("event_action")
    if not isinstance(action, str) or not action:
        errors.append("'event_action' is missing or blank")
    elif action not in ACTIONS:
        errors.append("'event_action' is invalid (must be one of trigger, acknowledge, resolve)")
    dedup_key = document.get("dedup_key")
    if dedup_key is not None and not isinstance(dedup_key, str):
        errors.append("'dedup_key' must be a string")
    elif isinstance(dedup_key, str) and len(dedup_key) > MAX_DEDUP_KEY:
        errors.append(f"Length of 'dedup_key' is too long (max {MAX_DEDUP_KEY} characters)")
    elif action in ("acknowledge", "resolve") and not dedup_key:
        errors.append("'dedup_key' is missing or blank")
    if action == "trigger":
        errors += _check_payload(document.get("payload"))
    return errors


def _check_payload(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object"]
    errors: list[str] = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary:
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > MAX_SUMMARY:
        errors.append(f"Length of 'payload.summary' is too long (max {MAX_SUMMARY} characters)")
    source = payload.get("source")
    if not isinstance(source, str) or not source:
        errors.append("'payload.source' is missing or blank")
    if payload.get("severity") not in SEVERITIES:
        errors.append("'payload.severity' is invalid (must be one of critical, error, warning, info)")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict | str | None):
        errors.append("'payload.custom_details' must be an object")
    return errors


class PagerDutyStandIn(LocalServer):
    """A local Events API v2 for one routing key. See the module docstring for the protocol."""

    handler = _Handler
    thread_name = "pagerduty-stand-in"

    def __init__(self, routing_key: str = DEFAULT_ROUTING_KEY, *, port: int = 0, host: str = "127.0.0.1") -> None:
        super().__init__(host, port)
        self.routing_key = routing_key
        self._arrivals = Arrivals[PagerDutyEvent, Fault]("PagerDuty events")

    @property
    def base_url(self) -> str:
        """What `EventsApiV2Client(base_url=...)` (and `EVENTSTORE_PAGERDUTY_URL`) takes."""
        return f"http://{self.host}:{self.port}"

    @property
    def accepted(self) -> list[PagerDutyEvent]:
        return self._arrivals.items

    @property
    def events(self) -> list[dict[str, Any]]:
        """The accepted events' bodies (without the routing key), in arrival order."""
        return [a.event for a in self.accepted]

    @property
    def statuses(self) -> list[int]:
        """The status of every answer to `POST /v2/enqueue`, in order: how many attempts a sender made."""
        return self._arrivals.statuses

    def clear(self) -> None:
        self._arrivals.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[PagerDutyEvent]:
        """Block until at least `count` events were accepted; `TimeoutError` otherwise."""
        return self._arrivals.wait_for(count, timeout)

    def fail_next(self, n: int = 1, status: int = 500, retry_after: float | None = None) -> None:
        """The next `n` enqueue requests get `status` (with `Retry-After` when given) before any checking;
        `n=0` clears the failures still queued."""
        self._arrivals.fail_next(n, Fault.of(status, retry_after))

    # the protocol

    def _post(self, handler: _Handler) -> None:
        received = time.time()
        if urlsplit(handler.path).path != ENQUEUE_PATH:
            send_json(handler, 404, {"status": "not found", "message": f"no such endpoint: {handler.path}"})
            return
        length = int(handler.headers.get("Content-Length") or 0)
        if not 0 <= length <= _READ_CAP:
            handler.close_connection = True
            send_json(handler, 413, {"status": "invalid request", "message": "Request too large"})
            return
        body = handler.rfile.read(length)
        fault = self._arrivals.next_fault()
        if fault is not None:
            self._answer(handler, fault.status, _fault_body(fault.status), fault.retry_after)
            return
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._answer(handler, 400, {"status": "invalid request", "message": "Invalid JSON", "errors": []})
            return
        errors = check_event(document, self.routing_key)
        if errors:
            self._answer(handler, 400, _invalid(*errors))
            return
        dedup_key = document.get("dedup_key") or uuid.uuid4().hex
        event = {k: v for k, v in document.items() if k != "routing_key"} | {"dedup_key": dedup_key}
        with self._arrivals.changed:
            self._arrivals.accept(PagerDutyEvent(event, dedup_key, received))
            self._arrivals.answered(202)
        send_json(handler, 202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key})

    def _answer(self, handler: _Handler, status: int, document: Any, retry_after: str | None = None) -> None:
        self._arrivals.answered(status)
        send_json(handler, status, document, {"Retry-After": retry_after} if retry_after else None)

    def _get(self, handler: _Handler) -> None:
        url = urlsplit(handler.path)
        if url.path != RECEIVED_PATH:
            send_json(handler, 404, {"status": "not found", "message": f"no such endpoint: {handler.path}"})
            return
        events, total = self._arrivals.page(url.query)
        page = [
            {"index": i, "receivedAt": datetime.fromtimestamp(a.received_at, UTC).isoformat(), "event": a.event}
            for i, a in events
        ]
        send_json(handler, 200, {"events": page, "next": total})


def _fault_body(status: int) -> dict[str, Any] | None:
    if status == 429:
        return None  # PagerDuty answers its rate limit with no body
    return {"status": "error", "message": f"the stand-in was told to answer {status}"}
