"""Local destinations for the sample engine: a CRM and an email service, each a real HTTP server on
127.0.0.1 that takes a JSON POST and answers with an id, and that can be told to fail.

- `POST <any path>` (JSON): 201 (CRM) or 202 (email) with `{"<idField>": "<name>-<n>", "received": <body>}`.
- `POST /control` `{"failNext": N, "status": 500, "body": {...}}`: the next N requests get `status` with that
  JSON body (default: 500 and an error naming the destination); `{"failNext": 0}` clears it. `GET /control`
  says how many failures are still queued and how many requests arrived. The same from Python:
  `fail_next()`, `requests`.
- `POST /control` `{"failMatching": "text", "status": 500}`: every request whose JSON body contains `text` (in
  its canonical text, see `body_key`) fails, until `{"failMatching": null}`: a bug that hits some messages
  and not others, for as long as it is not fixed. From Python: `fail_matching()`.
- `GET /received`: how many times each distinct body was received and accepted (answered with success),
  and which were accepted more than once: what a test of idempotency asks ("did the CRM create this
  record twice?"), also of a destination running in another process. From Python: `received()`,
  `duplicates()`.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from eventstore_local.standins.http_server import LocalServer, QuietHandler

CONTROL_PATH = "/control"
RECEIVED_PATH = "/received"
DEFAULT_CRM_PORT, DEFAULT_EMAIL_PORT = 7073, 7074


@dataclass(frozen=True)
class DestinationRequest:
    path: str
    body: Any
    status: int

    @property
    def accepted(self) -> bool:
        """Answered with success: the destination did what was asked (a failure it was told to answer did not)."""
        return 200 <= self.status < 300


def body_key(body: Any) -> str:
    """A request body as canonical JSON text: equal bodies, equal keys, whatever their members' order."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class _Handler(QuietHandler):
    def do_POST(self) -> None:
        self.server.owner._post(self)

    def do_GET(self) -> None:
        if self.path.split("?")[0] == RECEIVED_PATH:
            self.server.owner._get_received(self)
        else:
            self.server.owner._get(self)


def _send(handler: QuietHandler, status: int, document: Any) -> None:
    body = json.dumps(document).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class Destination(LocalServer):
    """One destination: `name` appears in its ids and errors; `status` is its success answer."""

    handler = _Handler
    thread_name = "destination"

    def __init__(
        self, name: str, *, id_field: str = "id", status: int = 201, port: int = 0, host: str = "127.0.0.1"
    ) -> None:
        super().__init__(host, port)
        self.name = name
        self.id_field = id_field
        self.status = status
        self._lock = threading.Lock()
        self._failures: list[tuple[int, Any]] = []
        self._matching: tuple[str, int, Any] | None = None
        self._requests: list[DestinationRequest] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[DestinationRequest]:
        """Every action request answered so far (a copy)."""
        with self._lock:
            return list(self._requests)

    def received(self, *, accepted_only: bool = True) -> Counter[str]:
        """How many times each distinct body arrived (keyed by `body_key`), by default only those accepted."""
        return Counter(body_key(r.body) for r in self.requests if r.accepted or not accepted_only)

    def duplicates(self) -> dict[str, int]:
        """The bodies accepted more than once (a record created twice, an email sent twice), with their counts."""
        return {key: count for key, count in self.received().items() if count > 1}

    def fail_next(self, n: int = 1, status: int = 500, body: Any = None) -> None:
        """The next `n` requests get `status` with `body` (JSON); `n=0` clears queued failures."""
        document = body if body is not None else self.default_error(status)
        with self._lock:
            self._failures = [(status, document)] * max(0, n)

    def fail_matching(self, text: str | None, status: int = 500, body: Any = None) -> None:
        """Every request whose body's canonical JSON contains `text` gets `status` (queued `fail_next` failures
        come first); None clears it."""
        document = body if body is not None else self.default_error(status)
        with self._lock:
            self._matching = (text, status, document) if text else None

    def default_error(self, status: int) -> dict[str, Any]:
        return {"error": {"code": "DestinationFailure", "message": f"the {self.name} service answered {status}"}}

    def _post(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length > 0 else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            _send(handler, 400, {"error": {"code": "BadRequest", "message": "the body is not JSON"}})
            return
        if handler.path.split("?")[0] == CONTROL_PATH:
            self._control(handler, body if isinstance(body, dict) else {})
            return
        with self._lock:
            if self._failures:
                status, answer = self._failures.pop(0)
            elif self._matching is not None and self._matching[0] in body_key(body):
                _, status, answer = self._matching
            else:
                status = self.status
                answer = {self.id_field: f"{self.name}-{len(self._requests) + 1}", "received": body}
            self._requests.append(DestinationRequest(handler.path, body, status))
        _send(handler, status, answer)

    def _control(self, handler: _Handler, body: dict[str, Any]) -> None:
        if "failMatching" in body:
            text, status = body["failMatching"], body.get("status", 500)
            if not (text is None or isinstance(text, str)) or not isinstance(status, int):
                _send(handler, 400, {"error": {"code": "BadRequest", "message": "failMatching is text or null"}})
                return
            self.fail_matching(text, status, body.get("body"))
            self._get(handler)
            return
        try:
            count, status = int(body.get("failNext", 1)), int(body.get("status", 500))
        except (TypeError, ValueError):
            _send(handler, 400, {"error": {"code": "BadRequest", "message": "failNext and status are integers"}})
            return
        self.fail_next(count, status, body.get("body"))
        self._get(handler)

    def _get(self, handler: _Handler) -> None:
        with self._lock:
            state = {
                "name": self.name,
                "pendingFailures": len(self._failures),
                "failMatching": self._matching[0] if self._matching else None,
                "requests": len(self._requests),
            }
        _send(handler, 200, state)

    def _get_received(self, handler: _Handler) -> None:
        counts = self.received()
        bodies = [{"body": json.loads(key), "count": count} for key, count in sorted(counts.items())]
        _send(
            handler,
            200,
            {
                "name": self.name,
                "accepted": sum(counts.values()),
                "distinct": len(counts),
                "duplicates": sum(1 for count in counts.values() if count > 1),
                "bodies": bodies,
            },
        )


def crm_destination(port: int = 0) -> Destination:
    """The CRM: `POST /records` creates a record and answers 201 with its `recordId`."""
    return Destination("crm", id_field="recordId", status=201, port=port)


def email_destination(port: int = 0) -> Destination:
    """The email service: `POST /messages` sends a message and answers 202 with its `messageId`."""
    return Destination("email", id_field="messageId", status=202, port=port)
