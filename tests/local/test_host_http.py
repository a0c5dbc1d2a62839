"""The local host's own HTTP layer over raw sockets: malformed, ambiguous or oversized requests are refused
with RFC 9457 problem+json and never reach a function (issue 8, item 8).

Most tests run an in-process `HttpFrontend` serving one echo function, so that "never reached the function"
is checked directly; the last ones send the same bytes to function_app.py behind the real host
(`api_url`) and check that nothing was stored.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func
import pytest

from eventstore import AUDIT_STREAM_ID, EventStore
from eventstore_local.host.config import HostConfig
from eventstore_local.host.functions import Invoker, describe
from eventstore_local.host.httpserver import MAX_BODY, HttpFrontend, _Handler
from eventstore_local.samples import LITWARE_TENANT_ID, sample_bytes
from tests.helpers import random_tenant_id

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
calls: list[dict[str, Any]] = []
_lock = threading.Lock()


@app.route(route="echo", methods=["GET", "POST", "HEAD"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    document = {"method": req.method, "headers": dict(req.headers), "body": req.get_body().decode("latin-1")}
    with _lock:
        calls.append(document)
    return func.HttpResponse(json.dumps(document), mimetype="application/json")


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    frontend = HttpFrontend(describe(app), HostConfig(), Invoker(), port=0)
    frontend.start()
    try:
        yield frontend.port
    finally:
        frontend.stop()


@pytest.fixture(autouse=True)
def no_calls() -> None:
    with _lock:
        calls.clear()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document


def read_answer(sock: socket.socket, buffer: bytearray, *, head: bool = False) -> Answer:
    """One response from `sock` (left over bytes stay in `buffer`); Content-Length framed, as this host sends."""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        assert data, f"the connection closed before a complete response: {bytes(buffer)!r}"
        buffer += data
    header_bytes, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status_line, *lines = header_bytes.decode("latin-1").split("\r\n")
    version, status, _ = status_line.split(" ", 2)
    assert version == "HTTP/1.1"
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        assert name.lower() not in headers, f"{name} twice in the response"
        headers[name.lower()] = value.strip()
    length = 0 if head else int(headers.get("content-length", "0"))
    body = bytearray(rest)
    while len(body) < length:
        data = sock.recv(65536)
        assert data, "the connection closed mid-body"
        body += data
    buffer[:] = body[length:]
    return Answer(int(status), headers, bytes(body[:length]))


def exchange(port: int, raw: bytes, *, head: bool = False) -> tuple[Answer, bytes]:
    """Send `raw` on a fresh connection; the first answer and whatever followed it until the server closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        buffer = bytearray()
        answer = read_answer(sock, buffer, head=head)
        while data := sock.recv(65536):
            buffer += data
        return answer, bytes(buffer)


def assert_refused(port: int, raw: bytes, status: int, slug: str, *, head: bool = False) -> dict[str, Any]:
    """`raw` is answered `status` as problem+json, the connection is closed after it, no function ran."""
    answer, after = exchange(port, raw, head=head)
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["connection"] == "close"
    assert after == b"", "nothing may be answered after a refusal (a smuggled request)"
    with _lock:
        assert calls == []
    if head:
        assert answer.body == b""
        return {}
    document = answer.json()
    assert document["type"] == f"urn:eventstore:problem:{slug}"
    assert document["status"] == status
    assert document["title"] and document["detail"]
    return document


def request(
    method: str = "POST", target: str = "/api/echo", headers: bytes = b"", body: bytes = b"", version: bytes = b"1.1"
) -> bytes:
    return f"{method} {target} HTTP/".encode() + version + b"\r\nHost: localhost\r\n" + headers + b"\r\n" + body


# -- what must keep working -------------------------------------------------------------------------------


def test_well_formed_requests_reach_the_function_on_one_kept_alive_connection(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            request(headers=b"Content-Length: 5\r\nX-Value:  spaced\t \r\nX-Value: again\r\n", body=b"hello")
            + request(headers=b"Transfer-Encoding: chunked\r\nTE-Test: 1\r\n", body=b"3;ext=1\r\nabc\r\n0\r\n\r\n")
            + request("GET", headers=b"Content-Length: 000\r\n")
        )
        buffer = bytearray()
        answers = [read_answer(sock, buffer) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    first, second, third = (a.json() for a in answers)
    assert first["body"] == "hello"
    assert first["headers"]["x-value"] == "spaced,again"  # OWS trimmed, repeated fields joined
    assert second["body"] == "abc"
    assert (third["method"], third["body"]) == ("GET", "")


def test_expect_100_continue_and_http_1_0(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request(headers=b"Content-Length: 2\r\nExpect: 100-continue\r\n"))
        buffer = bytearray()
        assert read_answer(sock, buffer).status == 100
        sock.sendall(b"ok")
        answer = read_answer(sock, buffer)
        assert (answer.status, answer.json()["body"]) == (200, "ok")
    answer, _ = exchange(port, b"GET /api/echo HTTP/1.0\r\n\r\n")  # no Host needed before 1.1
    assert answer.status == 200


# -- the header section: one field line is one header, read the same way by every parser -----------------


@pytest.mark.parametrize(
    "line",
    [
        b'If-Match: "1"\rX-Evil: 1',  # a bare CR: email.parser made it two headers
        b"X-Evil\r: 1",  # in the name
        b"X-Value: a\rb",
        b"X-Value: a\x00b",  # NUL
        b"X-Value: a\x1bb",  # other controls
        b"X-Value: a\x7fb",  # DEL
        b"X-Value: a\nX-Evil: 1",  # a bare LF ends a line: the line before it is not CRLF-terminated
    ],
)
def test_control_characters_in_a_header_line_are_refused(port: int, line: bytes) -> None:
    assert_refused(port, request("GET", headers=line + b"\r\n"), 400, "malformed-request")


@pytest.mark.parametrize(
    "lines",
    [
        b"X-Value: a\r\n b\r\n",  # obs-fold, space
        b"X-Value: a\r\n\tb\r\n",  # obs-fold, tab
        b"X-Value : a\r\n",  # whitespace before the colon
        b"X Value: a\r\n",
        b"no colon here\r\n",
        b": no name\r\n",
    ],
)
def test_folded_and_malformed_header_lines_are_refused(port: int, lines: bytes) -> None:
    document = assert_refused(port, request("GET", headers=lines), 400, "malformed-request")
    if b"\r\n " in lines or b"\r\n\t" in lines:
        assert "folding" in document["detail"]  # refused as a fold, not by luck as a nameless line


def test_host_must_be_present_once_in_http_1_1(port: int) -> None:
    assert_refused(port, b"GET /api/echo HTTP/1.1\r\n\r\n", 400, "malformed-request")
    assert_refused(port, request("GET", headers=b"Host: elsewhere\r\n"), 400, "malformed-request")


def test_oversized_header_sections_are_431(port: int) -> None:
    assert_refused(port, request("GET", headers=b"X-Big: " + b"a" * 70_000 + b"\r\n"), 431, "header-fields-too-large")
    many = b"".join(b"X-%d: 1\r\n" % n for n in range(101))
    assert_refused(port, request("GET", headers=many), 431, "header-fields-too-large")


# -- the request line ----------------------------------------------------------------------------------------


def test_a_request_line_too_long_is_414(port: int) -> None:
    document = assert_refused(port, request("GET", "/api/echo?" + "a" * 70_000), 414, "uri-too-long")
    assert "instance" not in document  # the target was never read


def test_an_unknown_method_is_501(port: int) -> None:
    document = assert_refused(port, request("BREW", "/api/echo"), 501, "not-implemented")
    assert document["instance"] == "/api/echo"


def test_a_method_http_knows_but_the_function_does_not_take_is_405_with_allow(port: int) -> None:
    for method in ("TRACE", "QUERY", "DELETE"):
        answer, _ = exchange(port, request(method, "/api/echo", headers=b"Connection: close\r\n"))
        assert answer.status == 405 and answer.headers["allow"] == "GET, HEAD, POST", answer
        assert answer.headers["content-type"] == "application/problem+json"
    assert not calls


@pytest.mark.parametrize("version", [b"2.0", b"3.0", b"0.9"])
def test_an_unsupported_http_version_is_505(port: int, version: bytes) -> None:
    assert_refused(port, request("GET", version=version), 505, "http-version-not-supported")


@pytest.mark.parametrize(
    "line",
    [
        b"GET /api/echo HTTP/1.x",
        b"GET /api/echo HTTP/1.1.1",
        b"GET /api/echo HTTP/1.10",
        b"GET /api/echo HTTP/01.1",
        b"GET /api/echo http/1.1",
        b"GET  /api/echo HTTP/1.1",  # two spaces
        b"GET /api/echo  HTTP/1.1",
        b"GET /api/echo\tHTTP/1.1",
        b"GET /api/echo",  # HTTP/0.9
        b"GET /api/e\rcho HTTP/1.1",
        b"GET /api/e\x00cho HTTP/1.1",
        b"GET /api/\xe9cho HTTP/1.1",
        b"G(T /api/echo HTTP/1.1",
    ],
)
def test_a_malformed_request_line_is_400(port: int, line: bytes) -> None:
    assert_refused(port, line + b"\r\nHost: localhost\r\n\r\n", 400, "malformed-request")


def test_a_bare_lf_line_ending_is_400(port: int) -> None:
    assert_refused(port, b"GET /api/echo HTTP/1.1\nHost: localhost\n\n", 400, "malformed-request")


def test_a_refused_head_has_no_body(port: int) -> None:
    assert_refused(port, request("HEAD", headers=b"X-Value: a\x00\r\n"), 400, "malformed-request", head=True)


# -- the body's framing ------------------------------------------------------------------------------------


SMUGGLED = b"GET /api/echo HTTP/1.1\r\nHost: localhost\r\n\r\n"


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Length: 5\r\nContent-Length: 0\r\n",  # two values: which one ends the body?
        b"Content-Length: 0\r\nContent-Length: 5\r\n",
        b"Content-Length: 5\r\nContent-Length: 5\r\n",  # identical: refused too
        b"Content-Length: 5, 5\r\n",
        b"Content-Length: abc\r\n",
        b"Content-Length: -5\r\n",
        b"Content-Length: +5\r\n",
        b"Content-Length: 0x5\r\n",
        b"Content-Length: 5_0\r\n",
        b"Content-Length: \xb2\r\n",  # a latin-1 superscript two: str.isdigit() says yes
        b"Content-Length:\r\n",
        b"Transfer-Encoding: chunked, chunked\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked, gzip\r\n",  # chunked must be last
        b"Transfer-Encoding: identity\r\n",
        b"Transfer-Encoding: xchunked\r\n",
        b"Transfer-Encoding: chunked;q=1\r\n",
        b"Transfer-Encoding:\r\n",
    ],
)
def test_ambiguous_body_lengths_are_refused(port: int, headers: bytes) -> None:
    document = assert_refused(port, request(headers=headers, body=b"hello" + SMUGGLED), 400, "invalid-framing")
    assert document["instance"] == "/api/echo"


@pytest.mark.parametrize(
    "headers",
    [b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"],
)
def test_content_length_with_transfer_encoding_is_refused(port: int, headers: bytes) -> None:
    # A valid chunked body whose first 5 bytes are a valid Content-Length body: each reading has its own end.
    raw = request(headers=headers, body=b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED)
    assert_refused(port, raw, 400, "invalid-framing")


def test_a_refused_client_still_sending_its_body_reads_the_answer(port: int) -> None:
    # The body is left unread; closing on it would reset the connection and could destroy the answer.
    body = b"x" * (4 * 1024 * 1024)
    raw = request(headers=b"Content-Length: %d\r\nContent-Length: 1\r\n" % len(body), body=body)
    assert_refused(port, raw, 400, "invalid-framing")


def test_transfer_encoding_in_http_1_0_is_refused(port: int) -> None:
    raw = b"POST /api/echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert_refused(port, raw, 400, "invalid-framing")


def test_an_unknown_transfer_coding_before_chunked_is_501(port: int) -> None:
    raw = request(headers=b"Transfer-Encoding: gzip, chunked\r\n", body=b"0\r\n\r\n")
    assert_refused(port, raw, 501, "not-implemented")


@pytest.mark.parametrize(
    "body",
    [
        b"0x5\r\nhello\r\n0\r\n\r\n",  # int(..., 16) took these
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"5_0\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",  # no CRLF after the chunk
        b"5\nhello\r\n0\r\n\r\n",  # a bare LF
        b"5\rX\r\nhello\r\n0\r\n\r\n",  # a bare CR in the size line
        b"5\r\nhello\r\n0\r\nX-Trailer: a\rb\r\n\r\n",  # a bare CR in a trailer
        b"5\r\nhello\r\n0\r\n folded\r\n\r\n",
        b"5\r\nhel",  # the body ends early
    ],
)
def test_malformed_chunked_bodies_are_refused(port: int, body: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request(headers=b"Transfer-Encoding: chunked\r\n", body=body))
        sock.shutdown(socket.SHUT_WR)  # so that a short body ends instead of waiting for the read timeout
        answer = read_answer(sock, bytearray())
    assert answer.status == 400, answer.body
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == "urn:eventstore:problem:invalid-framing"
    assert calls == []


def test_a_body_shorter_than_its_content_length_is_refused(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request(headers=b"Content-Length: 10\r\n", body=b"short"))
        sock.shutdown(socket.SHUT_WR)
        answer = read_answer(sock, bytearray())
    assert (answer.status, answer.json()["type"]) == (400, "urn:eventstore:problem:invalid-framing")
    assert calls == []


def test_bodies_over_the_limit_are_413(port: int) -> None:
    too_big = str(MAX_BODY + 1).encode()
    assert_refused(port, request(headers=b"Content-Length: " + too_big + b"\r\n"), 413, "payload-too-large")
    assert_refused(port, request(headers=b"Content-Length: " + b"9" * 5000 + b"\r\n"), 413, "payload-too-large")
    chunked = b"Transfer-Encoding: chunked\r\n"
    assert_refused(port, request(headers=chunked, body=b"%x\r\n" % (MAX_BODY + 1)), 413, "payload-too-large")


# -- read timeouts --------------------------------------------------------------------------------------------


def test_a_request_that_stalls_mid_way_is_408(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Handler, "timeout", 0.3)
    assert_refused(port, b"POST /api/echo HTTP/1.1\r\nHost: localhost\r\n", 408, "request-timeout")
    assert_refused(port, request(headers=b"Content-Length: 10\r\n", body=b"short"), 408, "request-timeout")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # idle: closed without a word
        assert sock.recv(100) == b""


# -- the real host: refused requests store nothing ------------------------------------------------------------


def _envelope(tenant: str) -> bytes:
    document = json.loads(sample_bytes("envelope-trigger.json").replace(LITWARE_TENANT_ID.encode(), tenant.encode()))
    return json.dumps(document).encode()


@pytest.fixture
def host_port(api_url: str) -> int:
    port = urlsplit(api_url).port
    assert port is not None
    return port


@pytest.fixture
def onboarded(host_port: int) -> str:
    tenant = random_tenant_id()
    answer, _ = exchange(host_port, request("PUT", f"/api/tenants/{tenant}", b"Connection: close\r\n"))
    assert answer.status == 201, answer.body
    return tenant


def test_the_real_host_stores_nothing_for_refused_requests(host_port: int, onboarded: str, store: EventStore) -> None:
    target = f"/api/tenants/{onboarded}/messages"
    body = _envelope(onboarded)
    json_type = b"Content-Type: application/json\r\n"
    length = b"Content-Length: %d\r\n" % len(body)
    refused = [
        (length + b"Content-Length: 0\r\n", 400, "invalid-framing"),
        (b"Content-Length: 0\r\n" + length, 400, "invalid-framing"),
        (length + b"Transfer-Encoding: chunked\r\n", 400, "invalid-framing"),
        (length + b'If-Match: "1"\rX-Evil: 1\r\n', 400, "malformed-request"),
        (length + b"X-Folded: a\r\n b\r\n", 400, "malformed-request"),
    ]
    for headers, status, slug in refused:
        answer, after = exchange(host_port, request("POST", target, json_type + headers, body + SMUGGLED))
        assert answer.status == status, (headers, answer.body)
        assert answer.headers["content-type"] == "application/problem+json"
        document = answer.json()
        assert document["type"] == f"urn:eventstore:problem:{slug}"
        assert document["instance"] == target
        assert after == b""
    assert store.tenant(onboarded).stream_version(AUDIT_STREAM_ID) == 0

    # The same bytes, well framed, are stored: the refusals above were not refused for another reason.
    answer, _ = exchange(host_port, request("POST", target, json_type + length + b"Connection: close\r\n", body))
    assert answer.status == 202, answer.body
    assert store.tenant(onboarded).stream_version(AUDIT_STREAM_ID) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /api/echo HTTP/1.1\r\nHost: [\r\n\r\n",
        b"GET /api/echo HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET http://[x/api/echo HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
)
def test_a_host_or_target_no_url_can_be_built_from_is_400(port: int, raw: bytes) -> None:
    # The app reads its request's URL (http://<Host><target>); one that cannot be parsed was a 500 and a
    # dropped connection.
    assert_refused(port, raw, 400, "malformed-request")
    assert not calls
