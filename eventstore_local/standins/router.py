"""A local replay router: the HTTP endpoint of a workflow engine's router, as a real server on 127.0.0.1,
for tests and local runs (docs/replay.md).

- `POST <any path>` with the right secret header: 202, and the request (path, headers, exact body bytes)
  is recorded as delivered. A wrong or missing secret: 401, nothing recorded.
- It can be told to fail: `fail_next(status, count)` answers `status` (with an optional `Retry-After` and
  body) to the next `count` requests, `fail_always(status)` to every request until `recover()`. A failed
  request is not recorded as delivered; a 3xx carries a `Location`.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass

from eventstore_local.standins.http_server import LocalServer, QuietHandler

DEFAULT_SECRET_HEADER = "X-Router-Secret"  # noqa: S105 (a header name)


@dataclass(frozen=True)
class RouterRequest:
    """One replay the stand-in took."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: str | None
    body: bytes


class _Handler(QuietHandler):
    def do_POST(self) -> None:
        self.server.owner._post(self)


def _answer(handler: QuietHandler, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class RouterStandIn(LocalServer):
    """Takes replays POSTed with `secret` in `secret_header`, records them, and fails when told to."""

    handler = _Handler
    thread_name = "router-standin"

    def __init__(
        self,
        secret: str,
        *,
        secret_header: str = DEFAULT_SECRET_HEADER,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(host, port)
        self.secret = secret
        self.secret_header = secret_header
        self._cond = threading.Condition()
        self._requests: list[RouterRequest] = []
        self._next: list[_Failure] = []
        self._always: _Failure | None = None
        self._statuses: list[int] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/replays"

    @property
    def requests(self) -> list[RouterRequest]:
        """The replays taken so far, in arrival order (a copy)."""
        with self._cond:
            return list(self._requests)

    @property
    def statuses(self) -> list[int]:
        """Every status answered so far, failures and refusals included (a copy)."""
        with self._cond:
            return list(self._statuses)

    def fail_next(self, status: int, count: int = 1, retry_after: str | None = None, body: bytes = b"") -> None:
        """Answer `status` (with `Retry-After: retry_after` when given, and `body`) to the next `count`
        requests that carry the right secret; replaces failures still queued."""
        with self._cond:
            self._next = [_Failure(status, retry_after, body)] * max(0, count)

    def fail_always(self, status: int, retry_after: str | None = None, body: bytes = b"") -> None:
        """Answer `status` to every request until `recover()`."""
        with self._cond:
            self._always = _Failure(status, retry_after, body)

    def recover(self) -> None:
        """Take replays again: queued and permanent failures cleared."""
        with self._cond:
            self._next, self._always = [], None

    def wait_for(self, count: int, timeout: float = 10.0) -> list[RouterRequest]:
        """The first `count` replays taken, waiting up to `timeout` seconds for them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self._requests)} of {count} replays arrived within {timeout} s")
                self._cond.wait(remaining)
            return list(self._requests[:count])

    def _post(self, handler: _Handler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        given = handler.headers.get(self.secret_header)
        # The secret first, as a real router checks it: a request it refuses uses up no injected failure.
        if given is None or not hmac.compare_digest(given.encode(), self.secret.encode()):
            self._reply(handler, _Failure(401, None, b"missing or wrong router secret"))
            return
        with self._cond:
            failure = self._next.pop(0) if self._next else self._always
            if failure is None:
                self._requests.append(RouterRequest(handler.path, dict(handler.headers.items()), body))
                self._cond.notify_all()
        self._reply(handler, failure or _Failure(202, None, b""))

    def _reply(self, handler: _Handler, answer: _Failure) -> None:
        headers = {}
        if answer.retry_after is not None:
            headers["Retry-After"] = answer.retry_after
        if 300 <= answer.status < 400:
            headers["Location"] = f"http://{self.host}:{self.port}/moved"
        with self._cond:
            self._statuses.append(answer.status)
        _answer(handler, answer.status, answer.body, headers)
