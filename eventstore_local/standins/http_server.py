"""What the local stand-ins (Event Grid topic, webhook subscriber) share: a threaded HTTP server on
127.0.0.1 that is started and stopped with its owner, and keeps quiet when a client hangs up."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class OwnedServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], owner: Any) -> None:
        super().__init__(address, handler)
        self.owner = owner

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A sender that gives up (timeout) or is killed mid-request resets the connection: not an error here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: OwnedServer

    def log_message(self, format: str, *args: Any) -> None:
        return


class LocalServer:
    """Serves `handler` (whose `self.server.owner` is this object) on a thread while started."""

    handler: type[BaseHTTPRequestHandler]
    thread_name = "local-server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._port = port
        self._server: OwnedServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._server is None:
            self._server = OwnedServer((self.host, self._port), self.handler, self)
            self._port = int(self._server.server_address[1])
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.thread_name, daemon=True
            )
            self._thread.start()
        return self

    def stopping(self) -> None:
        """Called first by `stop`: wake whatever the handlers wait for."""

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self.stopping()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port


def send_json(handler: QuietHandler, status: int, document: Any, headers: dict[str, str] | None = None) -> None:
    """`document` as a JSON answer (no body when None), with `headers`."""
    body = b"" if document is None else json.dumps(document).encode()
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    if body:
        handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
