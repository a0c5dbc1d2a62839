"""HTTP triggers: a threaded HTTP/1.1 server (keep-alive) that routes to the app's HTTP functions.

Routes are the functions' route templates under host.json `extensions.http.routePrefix` (default `api`);
among the templates that match a path the most specific wins (ASP.NET Core precedence: literal, then
constrained, then plain, then catch-all parameters). A path no function serves is 404, a method its
functions do not allow is 405 (with `Allow`), a function that raises is 500; all three with an
`application/problem+json` body. Auth levels are not enforced.

The request line, the header section and the body framing are parsed here rather than by http.server,
which answers its errors as HTML and hands ambiguous requests on: a bare CR inside a header value made a
second header, duplicate `Content-Length`s were read by whichever came first. Anything two HTTP parsers
could read differently is refused with an RFC 9457 problem (`urn:eventstore:problem:<slug>`) and the
connection is closed, before any function runs.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import logging
import re
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

from eventstore.http.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_PREFIX
from eventstore_local.host.config import HostConfig
from eventstore_local.host.functions import FunctionSpec, Invoker, Outcome
from eventstore_local.host.routing import RouteTemplate

log = logging.getLogger("eventstore_local.host")

PROBLEM_JSON = PROBLEM_CONTENT_TYPE
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}
_NO_BODY = {204, 304}
MAX_BODY = 100 * 1024 * 1024  # Azure's request size limit
MAX_LINE = 65536  # a request line, a header line or a chunk-size line (http.server's own limits)
MAX_HEADERS = 100

# RFC 9110/9112 grammar, on the raw bytes: what email.parser would otherwise reinterpret.
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) (HTTP/[0-9]\.[0-9])")
_HTTP_VERSION = re.compile(rb"HTTP/([0-9])\.[0-9]")  # well formed, so a wrong one is 505, not 400
_FIELD_NAME = re.compile(_TOKEN)
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # HTAB is the only control a field may hold
_DIGITS = re.compile(r"[0-9]+")
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::[0-9]{0,5})?")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(?:;.*)?", re.DOTALL)

# The title and problem-type slug of each status this layer answers itself; titles are RFC 9110's.
REFUSALS: dict[int, tuple[str, str]] = {
    400: ("Bad Request", "malformed-request"),
    408: ("Request Timeout", "request-timeout"),
    413: ("Content Too Large", "payload-too-large"),
    414: ("URI Too Long", "uri-too-long"),
    431: ("Request Header Fields Too Large", "header-fields-too-large"),
    501: ("Not Implemented", "not-implemented"),
    505: ("HTTP Version Not Supported", "http-version-not-supported"),
}
INVALID_FRAMING = "invalid-framing"  # 400s about where the body ends: Content-Length, Transfer-Encoding, chunks


class Refusal(Exception):
    """A request this layer answers itself, before any function: malformed, ambiguous or too large."""

    def __init__(self, status: int, detail: str, slug: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        phrase = HTTPStatus(status).phrase
        self.title, default_slug = REFUSALS.get(status, (phrase, phrase.lower().replace(" ", "-")))
        self.slug = slug or default_slug

    def body(self, instance: str | None) -> bytes:
        document: dict[str, Any] = {
            "type": PROBLEM_TYPE_PREFIX + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            document["instance"] = instance
        return json.dumps(document, ensure_ascii=False).encode("utf-8")


def _framing(detail: str) -> Refusal:
    return Refusal(400, detail, INVALID_FRAMING)


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


# The host's own answers about routing and crashes, typed like the app's problems.
_HOST_PROBLEM_SLUGS = {404: "no-such-function", 405: "method-not-allowed", 500: "internal-error"}


def problem(status: int, detail: str, headers: Sequence[tuple[str, str]] = ()) -> Reply:
    title = HTTPStatus(status).phrase
    slug = _HOST_PROBLEM_SLUGS.get(status, HTTPStatus(status).phrase.lower().replace(" ", "-"))
    body = {"type": f"urn:eventstore:problem:{slug}", "title": title, "status": status, "detail": detail}
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
    timeout = 120  # idle kept-alive connections; a request that stalls this long mid-way is answered 408
    linger = 2.0  # seconds to drain what a refused client still sends, so that it reads the answer, not a reset
    server: _Server
    raw_requestline: bytes  # set by http.server before parse_request

    # The body's framing, decided once in parse_request: a Content-Length, chunked, or neither (empty).
    content_length: int | None = None
    chunked: bool = False

    def handle_one_request(self) -> None:
        self.path = ""  # so that a refusal never names the previous request's path as its instance
        super().handle_one_request()

    def dispatch(self) -> None:
        self.server.frontend.handle(self)

    # -- parsing: the stdlib's, made strict ------------------------------------------------------------

    def parse_request(self) -> bool:
        """Replaces http.server's: the same results (command, path, request_version, headers,
        close_connection) or a problem answered and False."""
        self.command = ""  # as http.server leaves it before a request line is understood
        self.request_version = "HTTP/1.1"  # not 0.9, so that a refusal still has a status line
        self.close_connection = True
        self.content_length, self.chunked = None, False
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        if self.raw_requestline in (b"\r\n", b"\n"):
            return False  # a stray empty line between requests: http.server closes quietly, and so do we
        try:
            self._parse_request_line()
            self._parse_headers()
            self._parse_framing()
        except Refusal as refusal:
            self.refuse(refusal)
            return False
        except TimeoutError:
            self.refuse(Refusal(408, f"the header section did not arrive within {self.timeout} s"))
            return False
        connection = self.headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        expect = self.headers.get("Expect", "")
        if expect.lower() == "100-continue" and self.request_version >= "HTTP/1.1":
            return bool(self.handle_expect_100())
        return True

    def _parse_request_line(self) -> None:
        raw = self.raw_requestline
        if not raw.endswith(b"\r\n"):
            # A bare LF ends lines for some parsers and not others; an unterminated line is a client gone.
            raise Refusal(400, "the request line must end with CRLF")
        line = raw[:-2]
        words = line.split(b" ")
        if len(words) == 3:
            version = _HTTP_VERSION.fullmatch(words[2])
            if version is not None and version.group(1) != b"1":
                raise Refusal(505, f"{words[2].decode()} is not supported here; use HTTP/1.1")
        match = _REQUEST_LINE.fullmatch(line)
        if match is None:
            raise Refusal(
                400,
                f"malformed request line {self.requestline!r}: expected METHOD SP request-target SP HTTP/1.x, "
                "single spaces, no control characters",
            )
        method, target, version_text = (part.decode("ascii") for part in match.groups())
        try:
            urlsplit(target)  # what routing does with it next; it refuses e.g. a bracket that is never closed
        except ValueError as exc:
            raise Refusal(400, f"malformed request target: {exc}") from None
        self.command, self.path, self.request_version = method, target, version_text
        # As http.server does (gh-87389): '//x' would read as a host name to a client following a redirect.
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")
        self.close_connection = version_text < "HTTP/1.1"

    def _parse_headers(self) -> None:
        lines: list[bytes] = []
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if len(line) > MAX_LINE:
                raise Refusal(431, f"a header line is longer than {MAX_LINE} bytes")
            if line == b"\r\n":
                break
            if not line.endswith(b"\r\n"):
                raise Refusal(400, "the header section ended early or has a line not ended by CRLF")
            if len(lines) == MAX_HEADERS:
                raise Refusal(431, f"more than {MAX_HEADERS} header lines")
            lines.append(_field_line(line[:-2], "header"))
        # Every line is now a plain `name: value` that email.parser, which http.server uses, reads as written.
        self.headers = http.client.parse_headers(io.BytesIO(b"".join(lines) + b"\r\n"), _class=self.MessageClass)

    def _parse_framing(self) -> None:
        """Where the body ends (RFC 9112 6.3), refusing every request two parsers could split differently."""
        hosts = self.headers.get_all("Host") or []
        if len(hosts) > 1 or (not hosts and self.request_version == "HTTP/1.1"):
            raise Refusal(400, "an HTTP/1.1 request needs exactly one Host header")
        if hosts and not _HOST.fullmatch(hosts[0].strip(" \t")):
            # The app sees the request's URL as http://<Host><target>: a Host that is not host[:port] would
            # make that URL unreadable (RFC 9110 7.2 makes it a 400).
            raise Refusal(400, f"the Host header {hosts[0]!r} is not host[:port]")
        lengths = self.headers.get_all("Content-Length") or []
        encodings = self.headers.get_all("Transfer-Encoding") or []
        if encodings:
            if lengths:
                raise _framing("Content-Length and Transfer-Encoding together")
            if self.request_version != "HTTP/1.1":
                raise _framing("Transfer-Encoding in an HTTP/1.0 request")
            codings = [c.strip().lower() for value in encodings for c in value.split(",")]
            if codings[-1] != "chunked" or codings.count("chunked") > 1:
                raise _framing(f"Transfer-Encoding {', '.join(encodings)!r}: chunked must be the last coding, once")
            if len(codings) > 1:
                raise Refusal(501, f"transfer codings other than chunked are not supported: {', '.join(encodings)}")
            self.chunked = True
            return
        if not lengths:
            return
        if len(lengths) > 1:
            raise _framing(f"{len(lengths)} Content-Length headers ({', '.join(lengths)}); send one")
        value = lengths[0].strip(" \t")
        if _DIGITS.fullmatch(value) is None:
            raise _framing(f"Content-Length {lengths[0]!r} is not a number of bytes")
        if len(value.lstrip("0")) > len(str(MAX_BODY)) or int(value) > MAX_BODY:
            raise Refusal(413, f"the body ({value} bytes) exceeds the {MAX_BODY}-byte limit")
        self.content_length = int(value)

    # -- answering what never reaches a function -------------------------------------------------------

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (414 for a long request line, 501 for an unknown method), as problems."""
        detail = explain or message or REFUSALS.get(code, (HTTPStatus(code).phrase, ""))[0]
        self.refuse(Refusal(code, detail))

    def refuse(self, refusal: Refusal) -> None:
        log.info("%r refused: %d %s", self.requestline[:200], refusal.status, refusal.detail)
        instance = urlsplit(self.path).path if self.path else None
        body = refusal.body(instance)
        self.close_connection = True  # after a framing error the next request's start is unknowable
        try:
            self.send_response(refusal.status, refusal.title)
            self.send_header("Content-Type", PROBLEM_CONTENT_TYPE)
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
            self._linger()
        except OSError:
            pass  # the client is gone; nothing to tell it

    def _linger(self) -> None:
        """Closing with unread bytes sends a reset, which can destroy the answer before the client reads it:
        send FIN, then read and discard until the client closes (bounded by `linger`)."""
        self.connection.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + self.linger
        drained = 0
        while drained < MAX_BODY and (left := deadline - time.monotonic()) > 0:
            self.connection.settimeout(left)
            try:
                chunk = self.connection.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            drained += len(chunk)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the frontend logs one line per request

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


def _field_line(line: bytes, where: str) -> bytes:
    """`line` (without its CRLF) if it is a well-formed `name: value` field line, else a 400."""
    if line[:1] in (b" ", b"\t"):
        # obs-fold: a continuation of the previous line to some parsers, a line of its own to others.
        raise Refusal(400, f"a {where} line starts with whitespace (obsolete line folding)")
    if _CONTROL.search(line):
        # Chiefly a bare CR, which email.parser (and so http.server) takes for a line break: one field
        # line would become two headers here and one elsewhere.
        raise Refusal(400, f"a {where} line holds a control character (CR, LF, NUL...): {line[:80]!r}")
    name, colon, value = line.partition(b":")
    if not colon or _FIELD_NAME.fullmatch(name) is None:
        raise Refusal(400, f"malformed {where} line {line[:80]!r}: expected a token, then ':' at once")
    # The value excludes surrounding whitespace (RFC 9110 5.5); email.parser keeps the trailing part.
    return name + b": " + value.strip(b" \t") + b"\r\n"


def _read_chunked(rfile: io.BufferedIOBase) -> bytes:
    """A chunked body (RFC 9112 7.1), strictly: hex sizes only (int() would take '0x1f', '+5', '1_0'), each
    chunk's CRLF checked, trailer lines parsed as header lines and dropped."""
    chunks: list[bytes] = []
    total = 0
    while True:
        line = rfile.readline(MAX_LINE + 1)
        if not line.endswith(b"\r\n") or _CONTROL.search(line[:-2]):
            raise _framing("malformed chunk-size line (or the body ended early)")
        size_match = _CHUNK_SIZE.fullmatch(line[:-2])
        if size_match is None:
            raise _framing(f"malformed chunk size {line[:40]!r}")
        digits = size_match.group(1).lstrip(b"0")
        if len(digits) > 8 or total + int(digits or b"0", 16) > MAX_BODY:
            raise Refusal(413, f"the chunked body exceeds the {MAX_BODY}-byte limit")
        size = int(digits or b"0", 16)
        if size == 0:
            break
        chunk = rfile.read(size)
        if len(chunk) != size or rfile.read(2) != b"\r\n":
            raise _framing("a chunk is shorter than its size or not followed by CRLF")
        chunks.append(chunk)
        total += size
    for _ in range(MAX_HEADERS + 1):
        line = rfile.readline(MAX_LINE + 1)
        if line == b"\r\n":
            return b"".join(chunks)
        if len(line) > MAX_LINE:
            raise Refusal(431, f"a trailer line is longer than {MAX_LINE} bytes")
        if not line.endswith(b"\r\n"):
            raise _framing("the trailer section ended early or has a line not ended by CRLF")
        try:
            _field_line(line[:-2], "trailer")
        except Refusal as refusal:
            raise _framing(refusal.detail) from None
    raise Refusal(431, f"more than {MAX_HEADERS} trailer lines")


# http.server calls do_<METHOD>. Every method HTTP defines is routed, so that one a function does not take
# is a 405 with Allow (what a client can act on); only a method HTTP does not know is a 501.
KNOWN_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY")
for _method in KNOWN_METHODS:
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
        except Refusal as refusal:
            handler.refuse(refusal)
            return
        except TimeoutError:
            handler.refuse(Refusal(408, f"the body did not arrive within {handler.timeout} s"))
            return
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
        """The body as framed by `parse_request`; a short or malformed one is refused, never passed on cut."""
        if handler.chunked:
            return _read_chunked(handler.rfile)
        size = handler.content_length
        if not size:
            return b""
        body = handler.rfile.read(size)
        if len(body) != size:
            raise _framing(f"the body ended after {len(body)} of its {size} bytes (Content-Length)")
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
