"""HTTP triggers: a threaded HTTP/1.1 server (keep-alive) that routes to the app's HTTP functions.

Routes are the functions' route templates under host.json `extensions.http.routePrefix` (default `api`);
among the templates that match a path the most specific wins (ASP.NET Core precedence: literal, then
constrained, then plain, then catch-all parameters). A path no function serves is 404, a method its
functions do not allow is 405 (with `Allow`), a function that raises is 500; all three with an
`application/problem+json` body. Auth levels are not enforced.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from eventstore.devhost.config import HostConfig
from eventstore.devhost.functions import FunctionSpec, Invoker, Outcome
from eventstore.devhost.routing import RouteTemplate

log = logging.getLogger("eventstore.devhost")

PROBLEM_JSON = "application/problem+json"
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}
_NO_BODY = {204, 304}
MAX_BODY = 100 * 1024 * 1024  # Azure's request size limit


class _BadRequest(Exception):
    pass


@dataclass
class Route:
    spec: FunctionSpec
    template: RouteTemplate
    methods: frozenset[str] | None  # None: every method
    order: int

    @property
    def sort_key(self) -> tuple[tuple[int, ...], int]:
        return self.template.precedence, self.order


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def problem(status: int, detail: str, headers: Sequence[tuple[str, str]] = ()) -> Reply:
    title = HTTPStatus(status).phrase
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return Reply(status, [("Content-Type", PROBLEM_JSON), *headers], json.dumps(body).encode())


def to_reply(value: Any) -> Reply:
    """The function's HTTP output as the worker converts it: `func.HttpResponse` or `str` (200, text/plain)."""
    if value is None:
        return Reply(204, [], b"")
    if isinstance(value, str):
        return Reply(200, [("Content-Type", "text/plain; charset=utf-8")], value.encode("utf-8"))
    if isinstance(value, func.HttpResponse):
        headers = [(k, v) for k, v in value.headers.items() if k.lower() not in _HOP_BY_HOP]
        if not any(k.lower() == "content-type" for k, _ in headers):
            mimetype = str(value.mimetype)
            content_type = f"{mimetype}; charset={value.charset}" if mimetype.startswith("text/") else mimetype
            headers.insert(0, ("Content-Type", content_type))
        return Reply(int(value.status_code), headers, value.get_body() or b"")
    raise TypeError(f"an HTTP function must return func.HttpResponse or str, not {type(value).__name__}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], frontend: HttpFrontend) -> None:
        self.frontend = frontend
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End kept-alive connections, so that no request reaches a stopped host."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "eventstore-devhost"
    disable_nagle_algorithm = True
    timeout = 120  # idle kept-alive connections
    server: _Server

    def dispatch(self) -> None:
        self.server.frontend.handle(self)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the frontend logs one line per request

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


for _method in ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"):  # http.server calls do_<METHOD>
    setattr(_Handler, f"do_{_method}", _Handler.dispatch)


class HttpFrontend:
    """The HTTP server of a DevHost."""

    def __init__(
        self,
        specs: Sequence[FunctionSpec],
        config: HostConfig,
        invoker: Invoker,
        *,
        bind: str = "127.0.0.1",
        port: int = 7071,
        on_success: Callable[[FunctionSpec, Outcome], None] | None = None,
    ) -> None:
        self.config = config
        self.invoker = invoker
        self.on_success = on_success
        self.prefix = config.route_prefix.strip("/")
        routes = []
        for order, spec in enumerate(specs):
            methods = spec.trigger.get("methods")
            routes.append(
                Route(
                    spec=spec,
                    template=RouteTemplate(str(spec.trigger.get("route") or spec.name)),
                    methods=frozenset(str(m).upper() for m in methods) if methods else None,
                    order=order,
                )
            )
        self.routes = sorted(routes, key=lambda r: r.sort_key)
        self.bind = bind
        self._server = _Server((bind, port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="devhost-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.bind}:{self.port}"

    def url_for(self, route: Route) -> str:
        path = "/".join(p for p in (self.prefix, route.template.template.strip("/")) if p)
        return f"{self.base_url}/{path}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join(timeout=5)

    # -- one request -------------------------------------------------------------------------------------

    def handle(self, handler: _Handler) -> None:
        started = time.perf_counter()
        method = handler.command.upper()
        target = urlsplit(handler.path)
        try:
            body = self._read_body(handler)
        except _BadRequest as exc:
            handler.close_connection = True
            reply = problem(400, str(exc))
        else:
            reply = self._reply(handler, method, target.path, target.query, body)
        self._write(handler, method, reply)
        log.info("%s %s %d %.1f ms", method, handler.path, reply.status, (time.perf_counter() - started) * 1000)

    def _reply(self, handler: _Handler, method: str, path: str, query: str, body: bytes) -> Reply:
        route_path = self._strip_prefix(path)
        if route_path is None:
            return self._not_found(method, path)
        allowed: set[str] = set()
        for route in self.routes:
            params = route.template.match(route_path)
            if params is None:
                continue
            if route.methods is not None and method not in route.methods:
                allowed |= route.methods
                continue
            return self._invoke(handler, route, method, query, params, body)
        if allowed:
            return problem(
                405,
                f"{method} is not allowed here; allowed: {', '.join(sorted(allowed))}",
                [("Allow", ", ".join(sorted(allowed)))],
            )
        return self._not_found(method, path)

    def _not_found(self, method: str, path: str) -> Reply:
        if method in {"GET", "HEAD"} and path.rstrip("/") == "":
            text = "The eventstore local Functions host is running. Functions:\n" + "".join(
                f"  {r.spec.name}: {'|'.join(sorted(r.methods)) if r.methods else '*'} {self.url_for(r)}\n"
                for r in self.routes
            )
            return Reply(200, [("Content-Type", "text/plain; charset=utf-8")], text.encode())
        if method in {"GET", "HEAD"} and path.rstrip("/").lower() == "/admin/host/status":
            return Reply(200, [("Content-Type", "application/json")], b'{"state": "Running"}')
        return problem(404, f"no function serves {path}")

    def _strip_prefix(self, path: str) -> str | None:
        if not self.prefix:
            return path
        head = f"/{self.prefix}"
        if path.lower() == head.lower() or path.lower() == head.lower() + "/":
            return ""
        if path.lower().startswith(head.lower() + "/"):
            return path[len(head) + 1 :]
        return None

    def _invoke(
        self, handler: _Handler, route: Route, method: str, query: str, params: dict[str, str], body: bytes
    ) -> Reply:
        headers: dict[str, str] = {}
        for key, value in handler.headers.items():
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        query_params: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            query_params[key] = f"{query_params[key]},{value}" if key in query_params else value
        host = handler.headers.get("Host") or f"{self.bind}:{self.port}"
        request = func.HttpRequest(
            method, f"http://{host}{handler.path}", headers=headers, params=query_params, route_params=params, body=body
        )
        try:
            outcome = self.invoker.invoke(route.spec, request)
            output = next((b for b in route.spec.outputs if b.get("type") == "http"), None)
            result: Any = outcome.value
            if output is not None and output.get("name") != "$return":
                result = outcome.outputs.get(str(output.get("name")))
            reply = to_reply(result)
            if self.on_success is not None:
                self.on_success(route.spec, outcome)
        except Exception as exc:
            log.error(
                "%s %s: function %s failed: %s: %s",
                method,
                handler.path,
                route.spec.name,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            return problem(500, f"function {route.spec.name} failed ({type(exc).__name__}); see the host log")
        return reply

    @staticmethod
    def _read_body(handler: _Handler) -> bytes:
        encoding = handler.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in encoding:
            chunks: list[bytes] = []
            total = 0
            while True:
                line = handler.rfile.readline(65537)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError as exc:
                    raise _BadRequest("malformed chunked body") from exc
                if size == 0:
                    while handler.rfile.readline(65537).strip():  # trailers
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise _BadRequest("request body too large")
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline(3)
        length = handler.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError as exc:
            raise _BadRequest("malformed Content-Length") from exc
        if size < 0 or size > MAX_BODY:
            raise _BadRequest("request body too large" if size > 0 else "malformed Content-Length")
        body = handler.rfile.read(size)
        if len(body) != size:
            # The client went away mid-body: never hand a function a truncated request.
            raise _BadRequest("request body shorter than its Content-Length")
        return body

    @staticmethod
    def _write(handler: _Handler, method: str, reply: Reply) -> None:
        try:
            handler.send_response(reply.status)
            for key, value in reply.headers:
                handler.send_header(key, value)
            if reply.status not in _NO_BODY:
                handler.send_header("Content-Length", str(len(reply.body)))
            if handler.close_connection:
                handler.send_header("Connection", "close")
            handler.end_headers()
            if method != "HEAD" and reply.status not in _NO_BODY and reply.body:
                handler.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True
