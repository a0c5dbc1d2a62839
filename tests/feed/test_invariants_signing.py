"""Webhook signatures are Standard Webhooks', checked against that specification's published vector.

The product signs and verifies with one function, so a change to what is signed would still verify
against itself. These tests hold it to a known answer instead: the test vector of the Standard Webhooks
repository (standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py,
`test_sign_function`; the same vector is in every official library's tests). Then a real delivery is
captured on the wire by a plain HTTP server that knows nothing of the product's code, and its signature
is recomputed here from the bytes that arrived, with the reference computation the vector vouches for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from eventstore import EventStore, TenantEvents
from eventstore.feed import signing
from eventstore.feed.publisher import FeedPublisher
from eventstore.feed.sinks import WebhookSink
from eventstore.models import START
from tests.helpers import event, feed_checkpoint, read_feed

# The Standard Webhooks specification's test vector.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 (published, not a secret)
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_PAYLOAD = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def reference_signature(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """The specification's computation, written out here so that it shares nothing with the product:
    HMAC-SHA256 over "{id}.{timestamp}.{body}" keyed with the base64 after "whsec_", base64, "v1,"."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = message_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def test_the_reference_computation_gives_the_published_answer() -> None:
    assert reference_signature(VECTOR_SECRET, VECTOR_ID, str(VECTOR_TIMESTAMP), VECTOR_PAYLOAD) == VECTOR_SIGNATURE


def test_the_product_signs_the_published_vector() -> None:
    key = signing.key_of(VECTOR_SECRET)
    assert signing.signature(key, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD) == VECTOR_SIGNATURE
    assert signing.signed_headers(key, VECTOR_ID, VECTOR_PAYLOAD, now=VECTOR_TIMESTAMP) == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }


def test_the_product_verifies_the_published_vector_and_nothing_else() -> None:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    signing.verify(VECTOR_SECRET, headers, VECTOR_PAYLOAD, now=VECTOR_TIMESTAMP)
    # Several signatures (key rotation), space-separated, one of them good.
    rotated = {**headers, "webhook-signature": "v1,AAAA" + " " + VECTOR_SIGNATURE}
    signing.verify(VECTOR_SECRET, rotated, VECTOR_PAYLOAD, now=VECTOR_TIMESTAMP)
    for changed in (
        {**headers, "webhook-id": VECTOR_ID + "x"},
        {**headers, "webhook-timestamp": str(VECTOR_TIMESTAMP + 1)},
        # The specification's own near miss: the last character of the digest changed.
        {**headers, "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="},
    ):
        with pytest.raises(signing.SignatureMismatch):
            signing.verify(VECTOR_SECRET, changed, VECTOR_PAYLOAD, now=VECTOR_TIMESTAMP + 1)
    with pytest.raises(signing.SignatureMismatch):
        signing.verify(VECTOR_SECRET, headers, b'{"test": 2432232315}', now=VECTOR_TIMESTAMP)


@dataclass(frozen=True)
class Captured:
    headers: dict[str, str]
    body: bytes


class CapturingSubscriber:
    """A plain HTTP server that answers the CloudEvents handshake and records each POST as it arrived."""

    def __init__(self) -> None:
        self.posts: list[Captured] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self, headers: dict[str, str]) -> None:
                self.send_response(200)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_OPTIONS(self) -> None:
                self._answer({"WebHook-Allowed-Origin": self.headers.get("WebHook-Request-Origin", "*")})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.posts.append(Captured({k.lower(): v for k, v in self.headers.items()}, body))
                self._answer({})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CapturingSubscriber:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def subscriber() -> Iterator[CapturingSubscriber]:
    with CapturingSubscriber() as capturing:
        yield capturing


def test_a_real_delivery_carries_the_standard_signature_of_the_bytes_sent(
    store: EventStore, tenant: TenantEvents, subscriber: CapturingSubscriber
) -> None:
    appended = [event({"n": n}) for n in range(3)]
    for new in appended:
        tenant.append("instance:signed", [new])
    feed = store.feed(tenant.tenant_id)
    deadline = time.monotonic() + 30  # another session's open transaction (shared server) holds the feed back
    while len(read_feed(feed, START, 10)) < len(appended) and time.monotonic() < deadline:
        time.sleep(0.01)
    sink = WebhookSink("vector", subscriber.url, VECTOR_SECRET, origin="eventstore.example", timeout=5.0)
    settings = store.settings.model_copy(update={"feed_retry_seconds": 2.0})
    publisher = FeedPublisher(store, [sink], settings=settings)
    try:
        run = publisher.publish_tenant(tenant.tenant_id)
    finally:
        publisher.close()
    assert run.sinks[0].error is None and run.published == 3, run
    assert feed_checkpoint(feed, "webhook:vector") != START
    assert len(subscriber.posts) == 1
    post = subscriber.posts[0]
    message_id, timestamp, offered = (post.headers[h] for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    assert timestamp.isdigit() and message_id
    assert offered.split() == [reference_signature(VECTOR_SECRET, message_id, timestamp, post.body)]
    # What was signed is what was sent: the CloudEvents batch announcing the appended events.
    assert post.headers["content-type"].startswith("application/cloudevents-batch+json")
    assert [e["id"] for e in json.loads(post.body)] == [str(e.event_id) for e in appended]
