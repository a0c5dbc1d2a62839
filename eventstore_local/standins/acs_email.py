"""A local Azure Communication Services Email endpoint: a real HTTPS server on 127.0.0.1 that takes what
`azure.communication.email.EmailClient` (1.1, API 2025-09-01) sends, checks it as the service does, and
records the emails it accepted.

What the client sends (read from `azure/communication/email/_operations/_operations.py`, `_patch.py`,
`_shared/policy.py`, `_shared/utils.py` and azure-core's `LROBasePolling`):

- `POST /emails:send?api-version=2025-09-01` with the message as JSON (`senderAddress`, `recipients.to/cc/bcc`
  of `{"address"}`, `content.subject/plainText/html`), and `Operation-Id: <uuid>` when the caller gives one.
  The service answers 202 with `Operation-Location` (the operation's URL) and `{"id", "status": "Running"}`.
- `GET` of that URL until the status is terminal: `Running` (with `Retry-After`), then `Succeeded`, or
  `Failed` with `{"error": {"code", "message"}}`.
- With a connection string, every request is signed: `x-ms-date` (RFC 1123), `x-ms-content-sha256` (base64
  SHA-256 of the body, of "" for a GET) and `Authorization: HMAC-SHA256 SignedHeaders=x-ms-date;host;
  x-ms-content-sha256&Signature=<base64 HMAC-SHA256 with the base64-decoded access key of
  "VERB\\npath?query\\ndate;host;content-hash">`. Unsigned, wrongly signed, a body that is not the one hashed,
  or a date more than 15 minutes off: 401 `{"error": {"code": "Denied", ...}}`, as the service answers.

Why HTTPS: `EmailClient.from_connection_string` keeps only the host of the connection string's endpoint and
always puts `https://` in front of it, so an http:// stand-in cannot be reached through a connection string
at all. Rather than build the client another way in tests than in the app, this server makes a throwaway
certificate authority at start (with `cryptography`) and serves TLS with a certificate it signed for
127.0.0.1; a client trusts that CA alone: `AcsEmail(..., connection_verify=stand_in.ca_file)` or, for the
whole process, `REQUESTS_CA_BUNDLE=<ca_file>` (requests' variable; azure-core's transport honours it).

A repeated `Operation-Id` names the operation it started: the answer is that operation again and the email is
not recorded twice. (API 2025-09-01 says only that the id is the caller's name for the operation; this is
what a retry with the same id is meant to get.)

Not the service's: `fail_next(n, status, retry_after)` answers the next `n` sends with 429 or 5xx before
anything is accepted; `fail_operations_next(n)` makes the next `n` accepted operations end `Failed`.

    with AcsEmailStandIn() as acs:
        AcsEmail("a@contoso.example", connection_string=acs.connection_string, connection_verify=acs.ca_file)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from eventstore_local.standins.arrivals import Arrivals, Fault
from eventstore_local.standins.http_server import LocalServer, OwnedServer, QuietHandler, send_json

SEND_PATH = "/emails:send"
OPERATIONS_PATH = "/emails/operations/"
API_VERSIONS = ("2023-03-31", "2024-07-01-preview", "2025-09-01")
DEFAULT_ACCESS_KEY = base64.b64encode(b"eventstore local ACS email key!!").decode()
MAX_CLOCK_SKEW = timedelta(minutes=15)
SIGNED_HEADERS = "x-ms-date;host;x-ms-content-sha256"
_READ_CAP = 10 * 1024 * 1024  # the service's limit on a whole request, attachments included


@dataclass(frozen=True)
class AcsReceivedEmail:
    """One email the stand-in accepted, with the operation that carried it and when it arrived."""

    operation_id: str
    sender: str
    to: tuple[str, ...]
    subject: str
    text: str | None
    html: str | None
    message: dict[str, Any]
    received_at: float


@dataclass
class _Operation:
    id: str
    polls_left: int
    error: dict[str, str] | None = None
    polls: int = field(default=0)

    def document(self) -> dict[str, Any]:
        if self.polls_left > 0:
            return {"id": self.id, "status": "Running"}
        if self.error is not None:
            return {"id": self.id, "status": "Failed", "error": self.error}
        return {"id": self.id, "status": "Succeeded"}


class _Tls:
    """A certificate authority made for this run, and a server certificate it signed for 127.0.0.1 and localhost."""

    def __init__(self, host: str) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="acs-email-stand-in-"))
        now = datetime.now(UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eventstore ACS email stand-in CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        if host not in ("127.0.0.1", "localhost"):
            names.append(x509.DNSName(host))
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_file = self.directory / "ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        chain, key_file = self.directory / "server.pem", self.directory / "server.key"
        chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(chain, key_file)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class _TlsServer(OwnedServer):
    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], owner: Any, context: ssl.SSLContext
    ) -> None:
        self.context = context
        super().__init__(address, handler, owner)

    def get_request(self) -> tuple[socket.socket, Any]:
        # The handshake waits for the handler's thread (its `setup`), so a slow client holds up no other.
        raw, address = super().get_request()
        return self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that does not trust the certificate ends the handshake: that is its answer, not our error.
        if not isinstance(sys.exc_info()[1], ssl.SSLError | ConnectionError):
            super().handle_error(request, client_address)


class _Handler(QuietHandler):
    def setup(self) -> None:
        self.request.do_handshake()
        super().setup()

    def do_POST(self) -> None:
        self.server.owner._post(self)

    def do_GET(self) -> None:
        self.server.owner._get(self)


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    return status, {"error": {"code": code, "message": message}}, {"x-ms-error-code": code}


def check_message(document: Any) -> str | None:
    """The service's complaint about a message, None when it would queue it."""
    if not isinstance(document, dict):
        return "The request body must be a JSON object."
    if not isinstance(document.get("senderAddress"), str) or "@" not in document["senderAddress"]:
        return "senderAddress is required and must be an email address."
    recipients = document.get("recipients")
    if not isinstance(recipients, dict):
        return "recipients is required."
    addresses = [r for kind in ("to", "cc", "bcc") for r in recipients.get(kind) or []]
    if not addresses:
        return "At least one recipient (to, cc or bcc) is required."
    if any(not isinstance(r, dict) or not isinstance(r.get("address"), str) or "@" not in r["address"]
           for r in addresses):  # fmt: skip
        return "Every recipient needs an email address."
    content = document.get("content")
    if not isinstance(content, dict) or not isinstance(content.get("subject"), str) or not content["subject"]:
        return "content.subject is required."
    if not content.get("plainText") and not content.get("html"):
        return "content needs plainText or html."
    return None


class AcsEmailStandIn(LocalServer):
    """A local ACS Email endpoint for one access key (see the module docstring); `connection_string` and
    `ca_file` are what a client needs. `running_polls`: how many polls answer Running before the end."""

    handler = _Handler
    thread_name = "acs-email-stand-in"

    def __init__(
        self, access_key: str = DEFAULT_ACCESS_KEY, *, port: int = 0, host: str = "127.0.0.1", running_polls: int = 1
    ) -> None:
        super().__init__(host, port)
        self.access_key = access_key
        self.running_polls = running_polls
        self._secret = base64.b64decode(access_key)
        self._tls: _Tls | None = None
        self._arrivals = Arrivals[AcsReceivedEmail, Fault]("emails")
        self._operations: dict[str, _Operation] = {}  # these two under `self._arrivals.changed` too
        self._failing_operations = 0

    def start(self) -> Self:
        # LocalServer.start, with a TLS server in place of its plain one
        if self._server is None:
            self._tls = self._tls or _Tls(self.host)
            self._server = _TlsServer((self.host, self._port), self.handler, self, self._tls.context)
            self._port = int(self._server.server_address[1])
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.thread_name, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        super().stop()
        if self._tls is not None:
            self._tls.remove()
            self._tls = None

    @property
    def endpoint(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def connection_string(self) -> str:
        """What `EmailClient.from_connection_string` (and `EVENTSTORE_ACS_EMAIL_CONNECTION_STRING`) takes."""
        return f"endpoint={self.endpoint}/;accesskey={self.access_key}"

    @property
    def ca_file(self) -> str:
        """The PEM file of the CA that signed this server's certificate (`connection_verify`)."""
        if self._tls is None:
            raise RuntimeError("AcsEmailStandIn is not started")
        return str(self._tls.ca_file)

    @property
    def received(self) -> list[AcsReceivedEmail]:
        return self._arrivals.items

    @property
    def statuses(self) -> list[int]:
        """The status of every answer to `POST /emails:send`, in order: how many attempts a sender made."""
        return self._arrivals.statuses

    def clear(self) -> None:
        self._arrivals.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[AcsReceivedEmail]:
        """Block until at least `count` emails were accepted; `TimeoutError` otherwise."""
        return self._arrivals.wait_for(count, timeout)

    def fail_next(self, n: int = 1, status: int = 429, retry_after: float | None = None) -> None:
        """The next `n` signed sends get `status` (with `Retry-After` when given) and are not accepted;
        `n=0` clears the failures still queued."""
        self._arrivals.fail_next(n, Fault.of(status, retry_after))

    def fail_operations_next(self, n: int = 1) -> None:
        """The next `n` accepted sends end `Failed` (as when every recipient is suppressed) and are not recorded."""
        with self._arrivals.changed:
            self._failing_operations = n

    # the protocol

    def _post(self, handler: _Handler) -> None:
        received = time.time()
        body = self._body(handler)
        if body is None:
            return
        url = urlsplit(handler.path)
        if url.path != SEND_PATH:
            send_json(handler, *_error(404, "NotFound", f"no such resource: {url.path}"))
            return
        answer = self._refusal(handler, body, url.query)
        if answer is not None:
            self._answer(handler, *answer)
            return
        fault = self._arrivals.next_fault()
        if fault is not None:
            code = "TooManyRequests" if fault.status == 429 else "ServiceUnavailable"
            status, document, headers = _error(fault.status, code, f"the stand-in was told to answer {fault.status}")
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            self._answer(handler, status, document, headers)
            return
        try:
            message = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._answer(handler, *_error(400, "BadRequest", "The request body is not valid JSON."))
            return
        complaint = check_message(message)
        if complaint is not None:
            self._answer(handler, *_error(400, "BadRequest", complaint))
            return
        operation_id = handler.headers.get("Operation-Id") or str(uuid.uuid4())
        try:
            operation_id = str(uuid.UUID(operation_id))
        except ValueError:
            self._answer(handler, *_error(400, "BadRequest", "Operation-Id must be a UUID."))
            return
        with self._arrivals.changed:
            operation = self._operations.get(operation_id)
            if operation is None:  # a repeated Operation-Id is answered with the operation it started
                operation = self._accept(operation_id, message, received)
            document = operation.document()
            self._arrivals.answered(202)
        location = f"{self.endpoint}{OPERATIONS_PATH}{operation_id}?api-version={_api_version(url.query)}"
        send_json(handler, 202, document, {"Operation-Location": location, "Retry-After": "0"})

    def _accept(self, operation_id: str, message: dict[str, Any], received: float) -> _Operation:
        error = None
        if self._failing_operations > 0:
            self._failing_operations -= 1
            error = {"code": "EmailDroppedAllRecipientsSuppressed", "message": "Message dropped: every recipient "
                     "is on the suppression list."}  # fmt: skip
        operation = _Operation(operation_id, self.running_polls, error)
        self._operations[operation_id] = operation
        if error is None:
            content, recipients = message["content"], message["recipients"]
            self._arrivals.accept(
                AcsReceivedEmail(
                    operation_id=operation_id,
                    sender=message["senderAddress"],
                    to=tuple(r["address"] for r in recipients.get("to") or []),
                    subject=content["subject"],
                    text=content.get("plainText"),
                    html=content.get("html"),
                    message=message,
                    received_at=received,
                )
            )
        return operation

    def _get(self, handler: _Handler) -> None:
        body = self._body(handler)
        if body is None:
            return
        url = urlsplit(handler.path)
        answer = self._refusal(handler, body, url.query)
        if answer is not None:
            send_json(handler, *answer)
            return
        operation_id = url.path.removeprefix(OPERATIONS_PATH) if url.path.startswith(OPERATIONS_PATH) else ""
        with self._arrivals.changed:
            operation = self._operations.get(operation_id)
            if operation is not None:
                document = operation.document()
                operation.polls += 1
                operation.polls_left = max(0, operation.polls_left - 1)
        if operation is None:
            send_json(handler, *_error(404, "NotFound", f"no operation {operation_id!r}"))
            return
        send_json(handler, 200, document, {"Retry-After": "0"} if document["status"] == "Running" else None)

    def _body(self, handler: _Handler) -> bytes | None:
        length = int(handler.headers.get("Content-Length") or 0)
        if not 0 <= length <= _READ_CAP:
            handler.close_connection = True
            send_json(handler, *_error(413, "RequestEntityTooLarge", "The request is larger than 10 MB."))
            return None
        return handler.rfile.read(length)

    def _refusal(self, handler: _Handler, body: bytes, query: str) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """401 for a request not signed with the key, 400 for an API version the service does not know."""
        if not self._signed(handler, body):
            return _error(401, "Denied", "Denied by the resource provider.")
        version = _api_version(query)
        if version not in API_VERSIONS:
            return _error(400, "UnsupportedApiVersion", f"The api-version '{version}' is not supported.")
        return None

    def _signed(self, handler: _Handler, body: bytes) -> bool:
        headers = handler.headers
        date, content_hash = headers.get("x-ms-date"), headers.get("x-ms-content-sha256")
        authorization, host = headers.get("Authorization") or "", headers.get("Host")
        prefix = f"HMAC-SHA256 SignedHeaders={SIGNED_HEADERS}&Signature="
        if not (date and content_hash and host and authorization.startswith(prefix)):
            return False
        try:
            skew = abs(datetime.now(UTC) - parsedate_to_datetime(date))
        except (TypeError, ValueError):
            return False
        if skew > MAX_CLOCK_SKEW:
            return False
        if not hmac.compare_digest(content_hash, base64.b64encode(hashlib.sha256(body).digest()).decode()):
            return False
        signed = f"{handler.command}\n{handler.path}\n{date};{host};{content_hash}"
        expected = base64.b64encode(hmac.new(self._secret, signed.encode(), hashlib.sha256).digest()).decode()
        return hmac.compare_digest(authorization.removeprefix(prefix), expected)

    def _answer(self, handler: _Handler, status: int, document: Any, headers: dict[str, str]) -> None:
        self._arrivals.answered(status)
        send_json(handler, status, document, headers)


def _api_version(query: str) -> str:
    return parse_qs(query).get("api-version", [""])[0]
