"""A local Event Grid topic: a real HTTP server on 127.0.0.1 that speaks what the SDK sends.

`EventGridStandIn` accepts what `azure.eventgrid.EventGridPublisherClient` (azure-eventgrid 4.22, basic
topic, no `namespace_topic`) sends for CloudEvents, checks it the way Event Grid does, records what
arrived, and can be told to misbehave (fail, hang, reject) so the change feed's failure paths can be tested.

What the SDK sends (read from `azure/eventgrid/_legacy/_publisher_client.py` and `_legacy/_helpers.py`):

- `POST {endpoint}?api-version=2018-01-01`. The endpoint is used *as given* as the request URL
  (`HttpRequest(url=endpoint)`); the SDK does not append `/api/events`, so the topic endpoint must carry it,
  as the portal shows it: `https://<topic>.<region>-1.eventgrid.azure.net/api/events`. Here:
  `http://127.0.0.1:<port>/api/events` (`EventGridStandIn.endpoint`).
- Headers: `aeg-sas-key: <key>` for `AzureKeyCredential` (`AzureKeyCredentialPolicy`, header name
  `EVENTGRID_KEY_HEADER`), `aeg-sas-token` for `AzureSasCredential`, `Authorization: Bearer` for a
  `TokenCredential`; `Content-Type: application/cloudevents-batch+json; charset=utf-8` for CloudEvents
  (any `content_type=` the caller passes is overwritten for CloudEvents); `Content-Length`.
- Body: a JSON array of structured CloudEvents 1.0 (`id`, `source`, `type`, `specversion`, optional `time`,
  `subject`, `data` or `data_base64`, extensions at top level).
- Only HTTP 200 is success; 401 raises `ClientAuthenticationError` (a subclass of `HttpResponseError`),
  404 `ResourceNotFoundError`, anything else `HttpResponseError`.

Plain http on 127.0.0.1 works as is: nothing in the key or SAS path enforces https (`AzureKeyCredentialPolicy`
just sets a header). Only `BearerTokenCredentialPolicy` (Entra ID) refuses non-https URLs, so Entra auth
cannot be exercised against this stand-in; use a key locally (that is the settings' local choice anyway).

Caveats found in the SDK:

- The public `EventGridPublisherClient.__init__` does *not* forward its `**kwargs` to the basic-topic
  (legacy) client it wraps, so client-level options such as `transport=`, `retry_total=` or
  `connection_timeout=` given to the constructor are silently ignored for basic topics.
- Per-call options *are* forwarded: `client.send(events, retry_total=0, connection_timeout=2,
  read_timeout=0.5)` reaches azure-core's `RetryPolicy` and the requests transport. Without `retry_total=0`
  the default policy retries 5xx/timeouts three times with exponential backoff (tests get slow).
  The legacy `send` also passes those per-call kwargs into its internal CloudEvent model, which logs a
  harmless warning per event ("retry_total is not a known attribute ... will be ignored").
- A read timeout surfaces as `azure.core.exceptions.ServiceResponseTimeoutError` (a `ServiceResponseError`),
  not as an `HttpResponseError`.

Limits applied (Event Grid's, configurable for tests): 1 MB (1,048,576 bytes) per request and per event,
413 above either. Failures are answered with Event Grid's error shape `{"error": {"code", "message"}}`.

    with EventGridStandIn(key="local-key") as grid:
        client = EventGridPublisherClient(grid.endpoint, AzureKeyCredential("local-key"))
        client.send([CloudEvent(source="/tenants/t", type="x.y", data={"n": 1})])
        grid.wait_for(1, timeout=5)
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from eventstore_local.standins.http_server import LocalServer, QuietHandler

log = logging.getLogger(__name__)

API_VERSION = "2018-01-01"
EVENTS_PATH = "/api/events"
KEY_HEADER = "aeg-sas-key"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
SINGLE_CONTENT_TYPE = "application/cloudevents+json"
MAX_REQUEST_BYTES = 1_048_576
MAX_EVENT_BYTES = 1_048_576
REQUIRED_ATTRIBUTES = ("id", "source", "type", "specversion")
# Not Event Grid's: what the stand-in accepted, for people watching the feed locally (`eventstore feed watch`).
RECEIVED_PATH = "/received"
# Bodies larger than this are not read at all: the connection is closed after the 413.
_READ_CAP = 64 * 1_048_576


@dataclass(frozen=True)
class AcceptedEvent:
    """One CloudEvent the stand-in accepted, with when it arrived (`time.time()`)."""

    event: dict[str, Any]
    arrived_at: float
    request_index: int


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stand-in answered (or dropped: `status` 0 for a hang that closed the connection)."""

    index: int
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body_size: int
    status: int
    reason: str
    event_count: int
    arrived_at: float


@dataclass
class _Fault:
    kind: str  # "status" | "hang"
    status: int = 500
    seconds: float = 0.0
    accept: bool = False


@dataclass
class _Outcome:
    status: int
    code: str = ""
    message: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)


class _Handler(QuietHandler):
    def do_POST(self) -> None:
        self.server.owner._handle(self)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == RECEIVED_PATH:
            self.server.owner._received(self)
        else:
            self.server.owner._handle(self)

    def do_PUT(self) -> None:
        self.server.owner._handle(self)

    def do_DELETE(self) -> None:
        self.server.owner._handle(self)


class EventGridStandIn(LocalServer):
    """A local Event Grid topic for CloudEvents. See the module docstring for the protocol.

    Misbehaviour is queued: `fail_next`, `reject_next` and `hang_next` each add `n` faults consumed by the
    next `n` requests in the order queued; when the queue is empty, `failure_rate` (0..1, seeded RNG) makes
    a request fail with `failure_status`. Faults apply before any validation, as a server-side failure would.
    """

    def __init__(
        self,
        key: str = "local-event-grid-key",
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        failure_rate: float = 0.0,
        failure_status: int = 500,
        seed: int | None = 0,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        max_event_bytes: int = MAX_EVENT_BYTES,
        log_arrivals: bool = False,
        latency: float = 0.0,
    ) -> None:
        super().__init__(host, port)
        self.key = key
        self.log_arrivals = log_arrivals
        self.latency = latency
        self.failure_rate = failure_rate
        self.failure_status = failure_status
        self.max_request_bytes = max_request_bytes
        self.max_event_bytes = max_event_bytes
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._accepted: list[AcceptedEvent] = []
        self._requests: list[RecordedRequest] = []
        self._faults: deque[_Fault] = deque()
        self._request_count = 0
        self._stopping = threading.Event()

    handler = _Handler
    thread_name = "event-grid-stand-in"

    def start(self) -> Self:
        self._stopping.clear()
        return super().start()

    def stopping(self) -> None:
        self._stopping.set()  # wakes hanging handlers

    # addresses

    @property
    def endpoint(self) -> str:
        """The topic endpoint `EventGridPublisherClient` takes (it posts to exactly this URL)."""
        return f"http://{self.host}:{self.port}{EVENTS_PATH}"

    # what arrived

    @property
    def events(self) -> list[dict[str, Any]]:
        """Accepted CloudEvents, in arrival order (a copy)."""
        with self._lock:
            return [a.event for a in self._accepted]

    @property
    def accepted(self) -> list[AcceptedEvent]:
        """Accepted CloudEvents with their arrival times (a copy)."""
        with self._lock:
            return list(self._accepted)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request answered so far, with its status (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def requests_started(self) -> int:
        """Requests that have arrived, answered or not yet (a hanging one counts at once)."""
        with self._lock:
            return self._request_count

    def clear(self) -> None:
        """Forget recorded events and requests (queued faults stay)."""
        with self._lock:
            self._accepted.clear()
            self._requests.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least `count` events were accepted; return them. `TimeoutError` otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._accepted) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self._accepted)} of {count} events arrived within {timeout} s")
                self._changed.wait(remaining)
            return [a.event for a in self._accepted]

    # misbehaviour

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next `n` requests get `status` (a server error by default) and nothing is recorded as accepted."""
        self._queue(n, _Fault("status", status=status))

    def reject_next(self, n: int = 1, status: int = 413) -> None:
        """The next `n` requests are rejected with `status` (413 by default) regardless of their size."""
        self._queue(n, _Fault("status", status=status))

    def hang_next(self, n: int = 1, seconds: float = 30.0, *, accept: bool = False) -> None:
        """The next `n` requests get no answer for `seconds` (or until `stop()`). Then, by default, the
        connection is closed without a response and nothing is accepted; with `accept=True` the request is
        processed normally afterwards (the sender may already have given up: an ambiguous outcome)."""
        self._queue(n, _Fault("hang", seconds=seconds, accept=accept))

    def _queue(self, n: int, fault: _Fault) -> None:
        with self._lock:
            self._faults.extend(_Fault(fault.kind, fault.status, fault.seconds, fault.accept) for _ in range(n))

    def _next_fault(self) -> _Fault | None:
        with self._lock:
            if self._faults:
                return self._faults.popleft()
            if self.failure_rate > 0 and self._rng.random() < self.failure_rate:
                return _Fault("status", status=self.failure_status)
            return None

    def _received(self, handler: _Handler) -> None:
        """`GET /received[?after=N]`: accepted events with index > N (all without `after`), and `next`."""
        after = parse_qs(urlsplit(handler.path).query).get("after", ["-1"])[0]
        try:
            start = int(after) + 1
        except ValueError:
            start = 0
        with self._lock:
            page = [
                {"index": i, "arrivedAt": datetime.fromtimestamp(a.arrived_at, UTC).isoformat(), "event": a.event}
                for i, a in enumerate(self._accepted[max(start, 0) :], start=max(start, 0))
            ]
            total = len(self._accepted)
        body = json.dumps({"events": page, "next": total}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    # the protocol

    def _handle(self, handler: _Handler) -> None:
        arrived = time.time()
        with self._lock:
            index = self._request_count
            self._request_count += 1
        url = urlsplit(handler.path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        length_text = headers.get("content-length", "0")
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        body = b""
        if 0 <= length <= _READ_CAP:
            body = handler.rfile.read(length)
        else:
            handler.close_connection = True

        outcome = self._outcome(handler, url.path, url.query, headers, length, body)
        if outcome is None:
            handler.close_connection = True
            self._record(index, handler, url.path, url.query, headers, len(body), 0, "hung, no response", 0, arrived)
            return

        if outcome.status == 200:
            with self._changed:
                self._accepted.extend(AcceptedEvent(e, arrived, index) for e in outcome.events)
                self._changed.notify_all()
            if self.log_arrivals:
                log.info("event grid stand-in: %d event(s) accepted", len(outcome.events))
            payload = b""
        else:
            payload = json.dumps({"error": {"code": outcome.code, "message": outcome.message}}).encode()
        self._record(
            index,
            handler,
            url.path,
            url.query,
            headers,
            len(body),
            outcome.status,
            outcome.message,
            len(outcome.events),
            arrived,
        )
        try:
            handler.send_response(outcome.status)
            if payload:
                handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(payload)))
            if handler.close_connection:
                handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:  # the client gave up (timeout) before the answer
            handler.close_connection = True

    def _outcome(
        self, handler: _Handler, path: str, query: str, headers: dict[str, str], length: int, body: bytes
    ) -> _Outcome | None:
        """The answer, after any injected latency or fault; None for a hang that ends with no answer."""
        if self.latency > 0:
            self._stopping.wait(self.latency)  # a topic's round trip, so that a sender can die mid-request
        fault = self._next_fault()
        if fault is not None and fault.kind == "hang":
            self._stopping.wait(fault.seconds)
            if not fault.accept or self._stopping.is_set():
                return None
        elif fault is not None:
            return _Outcome(fault.status, "InjectedFailure", f"the stand-in was told to answer {fault.status}")
        return self._check(handler.command, path, query, headers, length, body)

    def _record(
        self,
        index: int,
        handler: _Handler,
        path: str,
        query: str,
        headers: dict[str, str],
        body_size: int,
        status: int,
        reason: str,
        event_count: int,
        arrived: float,
    ) -> None:
        shown = {k: ("***" if k in (KEY_HEADER, "aeg-sas-token", "authorization") else v) for k, v in headers.items()}
        request = RecordedRequest(
            index, handler.command, path, query, shown, body_size, status, reason, event_count, arrived
        )
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def _check(self, method: str, path: str, query: str, headers: dict[str, str], length: int, body: bytes) -> _Outcome:
        if path.rstrip("/") != EVENTS_PATH:
            return _Outcome(404, "NotFound", f"no such path {path!r}; the topic endpoint is {EVENTS_PATH}")
        if method != "POST":
            return _Outcome(405, "MethodNotAllowed", f"{method} is not supported; POST events")
        versions = parse_qs(query).get("api-version", [])
        if versions != [API_VERSION]:
            return _Outcome(400, "BadRequest", f"api-version must be {API_VERSION}, got {versions or 'none'}")
        if headers.get(KEY_HEADER) != self.key:
            reason = "missing" if KEY_HEADER not in headers else "wrong"
            return _Outcome(401, "Unauthorized", f"the {KEY_HEADER} header is {reason}")
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in (BATCH_CONTENT_TYPE, SINGLE_CONTENT_TYPE):
            return _Outcome(415, "UnsupportedMediaType", f"content type {media_type!r}; send {BATCH_CONTENT_TYPE}")
        if length < 0 or length > self.max_request_bytes:
            return _Outcome(
                413, "RequestEntityTooLarge", f"request body {length} bytes exceeds {self.max_request_bytes} bytes"
            )
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            return _Outcome(400, "BadRequest", f"body is not JSON: {error}")
        if media_type == SINGLE_CONTENT_TYPE:
            document = [document]
        if not isinstance(document, list) or not document:
            return _Outcome(400, "BadRequest", "body must be a non-empty JSON array of CloudEvents")
        events: list[dict[str, Any]] = []
        for position, event in enumerate(document):
            if not isinstance(event, dict):
                return _Outcome(400, "BadRequest", f"event {position} is not a JSON object")
            for attribute in REQUIRED_ATTRIBUTES:
                value = event.get(attribute)
                if not isinstance(value, str) or not value:
                    return _Outcome(400, "BadRequest", f"event {position}: required attribute {attribute!r} missing")
            if event["specversion"] != "1.0":
                return _Outcome(400, "BadRequest", f"event {position}: specversion must be '1.0'")
            size = len(json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode())
            if size > self.max_event_bytes:
                return _Outcome(
                    413, "RequestEntityTooLarge", f"event {position} is {size} bytes, over {self.max_event_bytes}"
                )
            events.append(event)
        return _Outcome(200, events=events)
