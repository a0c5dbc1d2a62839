"""A local SMTP server: aiosmtpd on 127.0.0.1 that takes what `smtplib` sends, parses each message with `email`,
and records it. No STARTTLS and no AUTH are offered, as on a plain local relay: a sender configured for
either gets "not supported" from `smtplib`, which is how it would find out against a real one too.

`fail_next(n, reply)` answers the next `n` DATA commands with `reply` (an SMTP 4xx defers, a 5xx refuses).
With `listing_port` set, a small HTTP server also answers `GET /received[?after=N]` with the messages of
index > N and `next` (for `eventstore alerts watch` in another process).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from eventstore_local.standins.arrivals import Arrivals
from eventstore_local.standins.http_server import LocalServer, QuietHandler

RECEIVED_PATH = "/received"


@dataclass(frozen=True)
class ReceivedEmail:
    """One message as it arrived: the envelope, the headers people read, and the text and HTML parts."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    from_: str
    to: tuple[str, ...]
    subject: str
    content_type: str
    text: str | None
    html: str | None
    raw: bytes
    received_at: float

    def as_json(self) -> dict[str, Any]:
        return {
            "mailFrom": self.mail_from,
            "rcptTos": list(self.rcpt_tos),
            "from": self.from_,
            "to": list(self.to),
            "subject": self.subject,
            "contentType": self.content_type,
            "text": self.text,
            "html": self.html,
            "receivedAt": datetime.fromtimestamp(self.received_at, UTC).isoformat(),
        }


def parse_message(raw: bytes, mail_from: str, rcpt_tos: list[str], received_at: float) -> ReceivedEmail:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)  # the `default` policy's factory
    text_part, html_part = message.get_body(("plain",)), message.get_body(("html",))
    return ReceivedEmail(
        mail_from=mail_from,
        rcpt_tos=tuple(rcpt_tos),
        from_=str(message.get("From", "")),
        to=tuple(a.strip() for a in str(message.get("To", "")).split(",") if a.strip()),
        subject=str(message.get("Subject", "")),
        content_type=message.get_content_type(),
        text=None if text_part is None else _lines(text_part.get_content()),
        html=None if html_part is None else _lines(html_part.get_content()),
        raw=raw,
        received_at=received_at,
    )


def _lines(content: object) -> str:
    """A part's text as its author wrote it: SMTP carries CRLF line ends, `email` keeps them."""
    return str(content).replace("\r\n", "\n")


class _Handler:
    """aiosmtpd's handler: called on the controller's event-loop thread."""

    def __init__(self, owner: SmtpStandIn) -> None:
        self.owner = owner

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        return self.owner._deliver(envelope)


class _PortZeroController(Controller):
    """aiosmtpd's Controller, able to bind port 0: it pokes its own port to start, so learn the real one first."""

    def _trigger_server(self) -> None:
        if self.port == 0 and isinstance(self.server, asyncio.Server):
            self.port = int(self.server.sockets[0].getsockname()[1])
        super()._trigger_server()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it unannotated


class SmtpStandIn:
    """A local SMTP server on `host`:`port` (0: a free port, known after `start`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, listing_port: int | None = None) -> None:
        self.host = host
        self._port = port
        self._arrivals = Arrivals[ReceivedEmail, str]("emails")  # faults: the SMTP reply to answer
        self._controller: _PortZeroController | None = None
        self._listing = None if listing_port is None else _Listing(self._arrivals, listing_port, host)

    def start(self) -> Self:
        if self._controller is None:
            # server_hostname: aiosmtpd would otherwise look up this machine's FQDN, which can take seconds
            controller = _PortZeroController(
                _Handler(self), hostname=self.host, port=self._port, server_hostname="localhost"
            )
            controller.start()
            self._port, self._controller = controller.port, controller
            if self._listing is not None:
                self._listing.start()
        return self

    def stop(self) -> None:
        if self._listing is not None:
            self._listing.stop()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("SmtpStandIn is not started")
        return self._port

    @property
    def listing_url(self) -> str | None:
        """`GET {listing_url}` lists what arrived; None without a `listing_port`."""
        return None if self._listing is None else f"http://{self.host}:{self._listing.port}{RECEIVED_PATH}"

    @property
    def messages(self) -> list[ReceivedEmail]:
        return self._arrivals.items

    def clear(self) -> None:
        self._arrivals.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedEmail]:
        """Block until at least `count` messages arrived; `TimeoutError` otherwise."""
        return self._arrivals.wait_for(count, timeout)

    def fail_next(self, n: int = 1, reply: str = "451 4.3.0 Try again later") -> None:
        """The next `n` messages are answered `reply` at the end of DATA, and not recorded."""
        self._arrivals.fail_next(n, reply, zero_clears=False)

    def _deliver(self, envelope: Envelope) -> str:
        received = time.time()
        fault = self._arrivals.next_fault()
        if fault is not None:
            return fault
        raw = envelope.original_content or b""
        try:
            message = parse_message(raw, envelope.mail_from or "", envelope.rcpt_tos, received)
        except Exception as error:  # a message `email` cannot read is the sender's bug: refuse it, loudly
            return f"554 5.6.0 the stand-in could not parse the message: {error}"
        self._arrivals.accept(message)
        return "250 2.0.0 Message accepted for delivery"


class _ListingHandler(QuietHandler):
    def do_GET(self) -> None:
        self.server.owner.list_received(self)


class _Listing(LocalServer):
    handler = _ListingHandler
    thread_name = "smtp-stand-in-listing"

    def __init__(self, arrivals: Arrivals[ReceivedEmail, str], port: int, host: str) -> None:
        super().__init__(host, port)
        self.arrivals = arrivals

    def list_received(self, handler: _ListingHandler) -> None:
        url = urlsplit(handler.path)
        document: dict[str, Any]
        if url.path != RECEIVED_PATH:
            status, document = 404, {"error": f"no such path: {url.path}"}
        else:
            messages, total = self.arrivals.page(url.query)
            page = [{"index": i} | m.as_json() for i, m in messages]
            status, document = 200, {"messages": page, "next": total}
        body = json.dumps(document).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
