"""CloudEvents webhooks as a feed sink: consent handshake, Standard Webhooks signatures, their own
checkpoints (a broken subscriber holds back no one), and the failure kinds."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from azure.core.credentials import AzureKeyCredential

from eventstore import EventStore, TenantEvents
from eventstore.feed import signing
from eventstore.feed.publisher import FeedPublisher
from eventstore.feed.sinks import EventGridSink, Sink, WebhookSink
from eventstore.models import START
from eventstore_local.standins.eventgrid import EventGridStandIn
from eventstore_local.standins.webhook import WebhookReceiver
from tests.helpers import event, feed_checkpoint, settle

SECRET = "whsec_" + "c2VjcmV0LWtleS1vZi1hdC1sZWFzdC0xNi1ieXRlcw=="


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as receiver:
        yield receiver


def publisher(store: EventStore, *sinks: Sink, **settings: Any) -> FeedPublisher:
    merged = store.settings.model_copy(update={"feed_retry_seconds": 2.0, **settings})
    return FeedPublisher(store, list(sinks), settings=merged)


def webhook(receiver: WebhookReceiver, secret: str = SECRET, **options: Any) -> WebhookSink:
    return WebhookSink("sub", receiver.url, secret, origin="eventstore.example", timeout=2.0, **options)


def append(tenant: TenantEvents, count: int, stream: str = "instance:w1") -> list[str]:
    ids = []
    for _ in range(count):
        new = event()
        tenant.append(stream, [new])
        ids.append(str(new.event_id))
    return ids


def test_deliveries_are_signed_after_the_handshake(
    store: EventStore, tenant: TenantEvents, hook: WebhookReceiver
) -> None:
    ids = append(tenant, 3)
    run = publisher(store, webhook(hook)).publish_tenant(tenant.tenant_id)
    assert run.published == 3 and run.sinks[0].sink == "webhook:sub"
    assert hook.handshakes == ["eventstore.example"]  # asked once, before the first delivery
    assert [e["id"] for e in hook.events] == ids  # the receiver verified each signature (401 otherwise)
    assert feed_checkpoint(store.feed(tenant.tenant_id), "webhook:sub") != START
    append(tenant, 1)
    publisher(store, webhook(hook)).publish_tenant(tenant.tenant_id)
    assert len(hook.handshakes) == 2  # a new sink object (a new process) asks again


def test_the_signature_is_standard_webhooks() -> None:
    key = signing.key_of(SECRET)
    body = b'[{"id": "1"}]'
    headers = signing.signed_headers(key, "msg_1", body, now=1_700_000_000)
    assert headers["webhook-timestamp"] == "1700000000" and headers["webhook-signature"].startswith("v1,")
    signing.verify(SECRET, headers, body, now=1_700_000_010)
    with pytest.raises(signing.SignatureMismatch):
        signing.verify(SECRET, headers, body + b" ", now=1_700_000_010)
    with pytest.raises(signing.SignatureMismatch):
        signing.verify(SECRET, headers, body, now=1_700_000_000 + 301)  # replayed too late
    with pytest.raises(signing.SignatureMismatch):
        signing.verify("another-secret-of-16-bytes", headers, body, now=1_700_000_010)


def test_a_wrong_secret_is_refused_by_the_subscriber_and_holds_the_sink(
    store: EventStore, tenant: TenantEvents, hook: WebhookReceiver
) -> None:
    append(tenant, 2)
    settle(store, tenant)  # on a shared server, another session's transaction may keep the events unreadable a while
    run = publisher(store, webhook(hook, secret="not-the-subscribers-secret")).publish_tenant(tenant.tenant_id)  # noqa: S106
    assert run.published == 0 and run.sinks[0].error and "401" in run.sinks[0].error
    assert store.feed(tenant.tenant_id).dead_letter_count() == 0 and hook.events == []
    assert publisher(store, webhook(hook)).publish_tenant(tenant.tenant_id).published == 2


def test_no_delivery_without_consent(store: EventStore, tenant: TenantEvents) -> None:
    with WebhookReceiver(SECRET, allowed_origins=("someone-else.example",)) as refusing:
        append(tenant, 2)
        settle(store, tenant)
        run = publisher(store, webhook(refusing)).publish_tenant(tenant.tenant_id)
        assert run.published == 0 and run.sinks[0].error and "handshake refused" in run.sinks[0].error
        feed = store.feed(tenant.tenant_id)
        assert refusing.statuses == [] and feed_checkpoint(feed, "webhook:sub") == START
        state = feed.sink_states()["webhook:sub"]
        assert state.last_error and "handshake" in state.last_error
        # Without the handshake (configured so), deliveries go straight out.
        assert publisher(store, webhook(refusing, handshake=False)).publish_tenant(tenant.tenant_id).published == 2


def test_a_broken_webhook_holds_back_no_other_sink_or_tenant(store: EventStore, hook: WebhookReceiver) -> None:
    from tests.helpers import random_tenant_id

    with WebhookReceiver(SECRET, failure_rate=1.0, failure_status=503) as broken, EventGridStandIn(key="k") as grid:
        tenants = []
        for _ in range(2):
            tenant_id = random_tenant_id()
            store.onboard_tenant(tenant_id)
            tenants.append(store.tenant(tenant_id))
        ids = [append(t, 2) for t in tenants]
        for t in tenants:
            settle(store, t)
        sinks: list[Sink] = [
            WebhookSink("broken", broken.url, SECRET, origin="o", timeout=2.0),
            webhook(hook),
            EventGridSink(grid.endpoint, AzureKeyCredential("k")),
        ]
        the_publisher = publisher(store, *sinks, feed_retry_seconds=2.0)
        for tenant in tenants:
            run = the_publisher.publish_tenant(tenant.tenant_id)
            by_sink = {s.sink: s for s in run.sinks}
            assert by_sink["webhook:broken"].published == 0 and by_sink["webhook:broken"].error
            assert by_sink["webhook:broken"].requests > 1  # retried with backoff before being held
            assert by_sink["webhook:sub"].published == 2 and by_sink["eventgrid"].published == 2
            assert feed_checkpoint(store.feed(tenant.tenant_id), "webhook:broken") == START
        # Every healthy delivery, of both tenants, was done while the broken webhook was still being retried.
        last_broken_answer = broken.answered_at[-1]
        assert all(a.arrived_at < last_broken_answer for a in grid.accepted)
        assert [e["id"] for e in grid.events] == ids[0] + ids[1]
        # The nudge's way (skip_failing) leaves the failing sink alone for a while: no new requests to it.
        before = len(broken.statuses)
        more = append(tenants[0], 1)
        settle(store, tenants[0])
        nudged = the_publisher.publish_tenant(tenants[0].tenant_id, skip_failing=True)
        assert {s.sink for s in nudged.sinks} == {"webhook:sub", "eventgrid"} and len(broken.statuses) == before
        assert grid.events[-1]["id"] == more[0]


def test_a_refused_event_is_dead_lettered_for_that_webhook_only(
    store: EventStore, tenant: TenantEvents, hook: WebhookReceiver
) -> None:
    with WebhookReceiver(SECRET) as picky:
        ids = append(tenant, 3)
        settle(store, tenant)
        picky.refused_ids.add(ids[1])
        sinks: list[Sink] = [WebhookSink("picky", picky.url, SECRET, origin="o"), webhook(hook)]
        run = publisher(store, *sinks).publish_tenant(tenant.tenant_id)
        by_sink = {s.sink: s for s in run.sinks}
        assert by_sink["webhook:picky"].dead_lettered == 1 and by_sink["webhook:picky"].caught_up
        assert by_sink["webhook:picky"].published == 2
        feed = store.feed(tenant.tenant_id)
        assert feed.dead_letter_count("webhook:picky") == 1 and feed.dead_letter_count("webhook:sub") == 0
        assert [e["id"] for e in picky.events] == [ids[0], ids[2]]
        assert [e["id"] for e in hook.events] == ids


def test_a_redirect_is_not_followed(store: EventStore, tenant: TenantEvents, hook: WebhookReceiver) -> None:
    """requests would turn the POST into a bodiless GET; a 2xx to that must not count as delivered."""

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _moved(self) -> None:
            self.send_response(301 if self.command == "POST" else 200)
            self.send_header("Location", hook.url)
            self.send_header("WebHook-Allowed-Origin", "*")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            self._moved()

        def do_OPTIONS(self) -> None:
            self._moved()

        def do_GET(self) -> None:
            self._moved()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        append(tenant, 2)
        settle(store, tenant)
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        run = publisher(store, WebhookSink("moved", url, SECRET, origin="o")).publish_tenant(tenant.tenant_id)
        assert run.published == 0 and run.sinks[0].error and "301" in run.sinks[0].error
        assert hook.statuses == [] and feed_checkpoint(store.feed(tenant.tenant_id), "webhook:moved") == START
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from eventstore import Settings
    from eventstore.feed.config import sinks_from_settings

    monkeypatch.setenv("EVENTSTORE_WEBHOOKS__audit_tap__URL", "https://subscriber.example/hook")
    monkeypatch.setenv("EVENTSTORE_WEBHOOKS__audit_tap__SECRET", SECRET)
    monkeypatch.setenv("EVENTSTORE_WEBHOOKS__off__URL", "https://other.example/hook")
    monkeypatch.setenv("EVENTSTORE_WEBHOOKS__off__SECRET", SECRET)
    monkeypatch.setenv("EVENTSTORE_WEBHOOKS__off__ENABLED", "false")
    settings = Settings()
    assert [s.name for s in sinks_from_settings(settings)] == ["webhook:audit_tap"]
    # A bad secret disables that webhook only (logged), not the other sinks and not the app.
    monkeypatch.setenv("EVENTSTORE_WEBHOOKS__bad__URL", "https://x.example")
    monkeypatch.setenv("EVENTSTORE_WEBHOOKS__bad__SECRET", "short")
    monkeypatch.setenv("EVENTSTORE_WEBHOOKS__worse__URL", "https://y.example")
    monkeypatch.setenv("EVENTSTORE_WEBHOOKS__worse__SECRET", "whsec_not*base64")
    assert [s.name for s in sinks_from_settings(Settings())] == ["webhook:audit_tap"]
    with pytest.raises(ValueError, match="16 bytes"):
        WebhookSink("bad", "https://x.example", "short", origin="o")
