"""Queue dead letters and change-feed dead letters, each told to Slack once: what the Functions host moved to
an ingest queue's poison queue is taken off it and kept byte-exact with why it failed, and posted; 500 at
once are one summary post; a store outage leaves the messages on their queue (the redrive is tested over
HTTP, tests/http/test_dead_letters_api.py). A change-feed sink that refuses an event for good is posted once as well."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from azure.core.credentials import AzureKeyCredential
from psycopg import sql
from pydantic import SecretStr

from eventstore import EventStore, Settings
from eventstore.alerts.config import channels_from_settings
from eventstore.alerts.poison_queues import PoisonQueues, drain
from eventstore.alerts.runner import AlertRun, AlertRunner
from eventstore.alerts.sender import Sender
from eventstore.feed.publisher import FeedPublisher
from eventstore.feed.sinks import EventGridSink
from eventstore.store import PendingWork
from eventstore_local.standins.eventgrid import EventGridStandIn
from eventstore_local.standins.slack import SlackWebhookStandIn
from tests.feed.test_publisher import fill
from tests.helpers import random_tenant_id, settle
from tests.http.client import envelope


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackWebhookStandIn]:
    with SlackWebhookStandIn(rate_per_second=50.0) as receiver:
        yield receiver


@pytest.fixture
def dl_settings(settings: Settings, slack: SlackWebhookStandIn, azurite: Any) -> Settings:
    return settings.model_copy(
        update={
            "slack_webhook_url": SecretStr(slack.url),
            "public_url": "https://eventstore.contoso.example",
            "queue_connection_string": azurite.connection_string,
        }
    )


@pytest.fixture
def queues(azurite: Any) -> PoisonQueues:
    """Poison queues of this test's own, standing for the ingest queues' (the suite shares one Azurite): their
    messages are read as `workflow-messages`' and `workflow-outcomes`', and a redrive sends them there."""
    run = uuid4().hex[:10]
    sources = {f"m{run}-poison": "workflow-messages", f"o{run}-poison": "workflow-outcomes"}
    return PoisonQueues(azurite.connection_string, 10.0, sources, hide_seconds=1)


def _poison(queues: PoisonQueues, name: str, *bodies: bytes | str) -> None:
    """Messages as the host leaves them on a poison queue: the text it was queued with (base64 here)."""
    with queues.client(name) as client:
        client.create_queue()
        for body in bodies:
            client.send_message(body if isinstance(body, str) else base64.b64encode(body).decode())


def _waiting(queues: PoisonQueues, name: str) -> int:
    with queues.client(name) as client:
        return int(client.get_queue_properties().approximate_message_count or 0)


def _posts(slack: SlackWebhookStandIn, needle: str) -> list[str]:
    return [p.text or "" for p in slack.accepted if needle in json.dumps(p.blocks or []) + (p.text or "")]


def _send(store: EventStore, settings: Settings) -> int:
    return Sender(store, settings, channels_from_settings(settings)).send_tenant(store.queue_dead_letters())


def test_poisoned_messages_are_kept_exactly_and_each_posted_once(
    store: EventStore, dl_settings: Settings, queues: PoisonQueues, slack: SlackWebhookStandIn
) -> None:
    messages, outcomes = list(queues.sources)
    onboarded, never = random_tenant_id(), random_tenant_id()
    store.onboard_tenant(onboarded)
    stranger = envelope(never)  # valid, for a tenant never onboarded
    both = envelope(onboarded, isStartWorkflowRequest=True)  # a trigger and a start request at once
    not_base64 = "plain text, not base64 ☃"
    outcome = json.dumps({"tenantId": onboarded, "workflowInstanceId": "i-1", "events": "none"}).encode()
    _poison(queues, messages, stranger, both, not_base64)
    _poison(queues, outcomes, outcome, b"\x00\xff binary")

    result = drain(store, dl_settings, queues, notify=True)
    assert (result.kept, result.again, result.errors) == (5, 0, [])
    assert _waiting(queues, messages) == 0 and _waiting(queues, outcomes) == 0
    kept = {bytes(r.body): r for q in (messages, outcomes) for r in store.queue_dead_letters().list(queue=q)}
    assert set(kept) == {stranger, both, not_base64.encode(), outcome, b"\x00\xff binary"}
    assert kept[stranger].reason == f"UnknownTenant: tenant {never} was never onboarded"
    assert (kept[stranger].tenant_id, kept[stranger].message_type) == (never, "Submit")  # its triggerName
    assert kept[both].reason.startswith("InvalidInput (isTrigger): exactly one of")
    assert kept[both].tenant_id == onboarded
    assert not kept[not_base64.encode()].base64 and "not base64" in kept[not_base64.encode()].reason
    assert kept[outcome].reason.startswith("InvalidInput (events)") and kept[outcome].tenant_id == onboarded
    assert all(r.dequeue_count == 1 and r.redriven_at is None for r in kept.values())

    assert _send(store, dl_settings) == 5
    for row in kept.values():
        [post] = _posts(slack, row.message_id)
        assert post.startswith("Dead letter: a ") and row.queue in post
    [blocks] = [json.dumps(p.blocks) for p in slack.accepted if kept[stranger].message_id in json.dumps(p.blocks)]
    assert f"/api/console/tenants/{never}/dead-letters?queue=" in blocks and "UnknownTenant" in blocks

    # The next runs find nothing new and post nothing again.
    assert drain(store, dl_settings, queues, notify=True).kept == 0
    assert _send(store, dl_settings) == 0
    assert all(len(_posts(slack, row.message_id)) == 1 for row in kept.values())


def test_a_burst_of_poisoned_messages_is_one_summary_post(
    store: EventStore, dl_settings: Settings, queues: PoisonQueues, slack: SlackWebhookStandIn
) -> None:
    messages = next(iter(queues.sources))
    tenant_id = random_tenant_id()
    _poison(queues, messages, *(envelope(tenant_id) for _ in range(500)))
    before = len(slack.accepted)

    assert drain(store, dl_settings, queues, notify=True).kept == 500
    assert _send(store, dl_settings) == 500
    [summary] = slack.accepted[before:]
    assert (summary.text or "").startswith("500 notices for the deployment: 500 queue-dead-letter")
    assert f"500x queue dead letter / {messages} / Submit" in json.dumps(summary.blocks)
    assert len(store.queue_dead_letters().list(queue=messages, limit=1000)) == 500


def test_a_store_outage_leaves_poisoned_messages_on_their_queue(
    store: EventStore, dl_settings: Settings, queues: PoisonQueues
) -> None:
    messages = next(iter(queues.sources))
    body = envelope(random_tenant_id())
    _poison(queues, messages, body)
    down = dl_settings.model_copy(
        update={"database_url": "postgresql://postgres@127.0.0.1:9/none", "dependency_timeout_seconds": 1.0}
    )
    with EventStore(down) as unreachable:
        result = drain(unreachable, down, queues, notify=True)
    assert result.kept == 0 and result.errors and "StoreUnavailable" in result.errors[0]

    deadline = time.monotonic() + 30  # hidden for a second (hide_seconds), then back for the next run
    while (result := drain(store, dl_settings, queues, notify=True)).kept == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert result.kept == 1
    [row] = store.queue_dead_letters().list(queue=messages)
    assert row.body == body


def test_a_dead_letter_whose_notice_cannot_be_stored_is_neither_kept_nor_taken_off_its_queue(
    store: EventStore, dl_settings: Settings, queues: PoisonQueues, owner_conn: Any
) -> None:
    messages = next(iter(queues.sources))
    body = envelope(random_tenant_id())
    _poison(queues, messages, body)
    store.queue_dead_letters()  # the control schema migrated
    outbox = sql.Identifier(store.control_schema, "alert_outbox")
    role = sql.Identifier(dl_settings.app_role)
    owner_conn.execute(sql.SQL("REVOKE INSERT ON {} FROM {}").format(outbox, role))
    try:
        failed = drain(store, dl_settings, queues, notify=True)
    finally:
        owner_conn.execute(sql.SQL("GRANT INSERT ON {} TO {}").format(outbox, role))
    assert failed.kept == 0 and "StoreUnavailable" in failed.errors[0]
    assert store.queue_dead_letters().list(queue=messages) == []  # the row went with its notice

    deadline = time.monotonic() + 30  # the message is back on its queue after hide_seconds
    while (result := drain(store, dl_settings, queues, notify=True)).kept == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert (result.kept, result.again) == (1, 0)
    [row] = store.queue_dead_letters().list(queue=messages)
    assert row.body == body and row.dequeue_count == 2  # taken twice: once by the run that failed


def test_a_change_feed_dead_letter_is_posted_once(
    store: EventStore, dl_settings: Settings, slack: SlackWebhookStandIn
) -> None:
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    tenant = store.tenant(tenant_id)
    ids = fill(store, tenant, streams=2, per_stream=2)
    with EventGridStandIn(key="k") as grid:
        grid.reject_next(3, 400)  # 4 events, then [0, 1], then [0]: the first event is refused for good
        sink = EventGridSink(grid.endpoint, AzureKeyCredential("k"), timeout=5.0)
        publisher = FeedPublisher(store, [sink], settings=dl_settings.model_copy(update={"feed_retry_seconds": 5.0}))
        assert publisher.publish_tenant(tenant_id).sinks[0].dead_lettered == 1
    assert tenant_id in dict(store.registry.alerting())  # the alert timer visits it, whatever the heads say

    settle(store, tenant)
    runner = AlertRunner(store, dl_settings, PendingWork(store.pools, 3600), channels_from_settings(dl_settings))
    for _ in range(2):
        runner.run_tenant(tenant_id, AlertRun())
    [post] = _posts(slack, ids[0])
    assert post.startswith(f"Change feed dead letter: eventgrid refused event {ids[0]} for good (tenant {tenant_id})")
    assert tenant_id not in dict(store.registry.alerting())
