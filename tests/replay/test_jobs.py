"""Replay jobs in process, on real PostgreSQL and Azurite: the driver queues due items, the forwarder sends
each once and records it, a job finishes when its last item is sent however the sends interleave, a router
that fails holds the item (never drops it) until it takes it, and a job survives a forwarder that dies
between sending and recording (the item is sent again: at least once)."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient
from pydantic import ValidationError

from eventstore import EventStore, Settings, TenantEvents
from eventstore.ingest import record_message
from eventstore.replay.driver import ReplayDriver, ReplayQueue
from eventstore.replay.forwarder import Forwarder, ForwardMessage, replayed_event
from eventstore.replay.requests import changed_event, job_status, replay_bulk
from eventstore.replay_wire import parse_queue_message
from eventstore.settings import RouterSettings
from eventstore.store import AUDIT_STREAM_ID
from eventstore.views.messages import MessageFilter
from tests.http.client import envelope


@pytest.fixture
def replay_settings(settings: Settings, azurite: Any) -> Settings:
    return settings.model_copy(
        update={
            "queue_connection_string": azurite.connection_string,
            "blob_connection_string": azurite.connection_string,
            "replay_router": RouterSettings(queue=f"router-{uuid4().hex[:12]}"),
            "replay_confirm_over": 1000,
        }
    )


@pytest.fixture
def router(replay_settings: Settings) -> Iterator[QueueClient]:
    assert replay_settings.replay_router is not None
    client = QueueClient.from_connection_string(
        replay_settings.queue_connection_string, replay_settings.replay_router.queue or ""
    )
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    yield client
    client.delete_queue()
    client.close()


@pytest.fixture
def work(replay_settings: Settings) -> Iterator[tuple[ReplayQueue, QueueClient]]:
    """The replays queue, one of this test's own (the suite's host reads the shared one)."""
    name = f"replays-{uuid4().hex[:12]}"
    queue = ReplayQueue(replay_settings, name)
    reader = QueueClient.from_connection_string(replay_settings.queue_connection_string, name)
    yield queue, reader
    reader.delete_queue()
    reader.close()
    queue.close()


def record(store: EventStore, tenant: TenantEvents, count: int, workflow: str = "wf") -> list[bytes]:
    bodies = []
    for _ in range(count):
        body = envelope(tenant.tenant_id, properties={"WorkflowId": workflow, "WorkflowInstanceId": "i-1"})
        record_message(store, tenant.tenant_id, body, "test")
        bodies.append(body)
    return bodies


def queued(reader: QueueClient) -> list[ForwardMessage]:
    found = []
    for message in reader.receive_messages(max_messages=32, visibility_timeout=60):
        found.append(ForwardMessage.model_validate_json(base64.b64decode(message.content)))
        reader.delete_message(message)
    return found


def delivered(router: QueueClient) -> list[bytes]:
    bodies = []
    for message in router.receive_messages(max_messages=32, visibility_timeout=60):
        _, body, _ = parse_queue_message(base64.b64decode(message.content))
        bodies.append(body)
    return bodies


def test_a_job_finishes_when_its_last_item_is_sent_however_the_sends_interleave(
    store: EventStore,
    tenant: TenantEvents,
    replay_settings: Settings,
    router: QueueClient,
    work: tuple[ReplayQueue, QueueClient],
) -> None:
    bodies = record(store, tenant, 5)
    started = replay_bulk(
        store, replay_settings, tenant.tenant_id, MessageFilter(workflow_id="wf"), {"workflowId": "wf"},
        reason="test", requested_by="me",
    )  # fmt: skip
    job_id = started.job.job_id  # type: ignore[union-attr]
    queue, reader = work
    driver = ReplayDriver(store, replay_settings, lambda: queue)
    driver.drive_tenant(tenant.tenant_id)
    messages = queued(reader)
    assert sorted(p for m in messages for p in m.positions) == [1, 2, 3, 4, 5]
    # The queue delivers at least once and a stale item is queued again: forwarders get the job's message
    # three times over, and messages naming some of its items again, all at once.
    tenant_id = tenant.tenant_id
    overlapping = [ForwardMessage(tenant_id=tenant_id, job_id=job_id, positions=(p, p + 1)) for p in (1, 3)]
    forwarder = Forwarder(store, replay_settings)
    outcomes: list[str] = []
    arriving = messages * 3 + overlapping
    threads = [threading.Thread(target=lambda m=m: outcomes.append(forwarder.forward(m))) for m in arriving]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert "failed" not in outcomes and "sent" in outcomes
    assert sorted(delivered(router)) == sorted(bodies)  # each one once
    # Every item is sent; whoever sent the last one, the job is finished by now or at the timer's next run.
    assert tenant.tenant_id in dict(store.registry.replaying())
    driver.run_all()
    assert tenant.tenant_id not in dict(store.registry.replaying())
    status = job_status(store, tenant.tenant_id, job_id)
    assert (status.job.state, status.job.sent, status.counts.sent) == ("finished", 5, 5)
    # A message of the queue that comes again (at least once) finds its items sent: nothing more goes out.
    assert forwarder.forward(messages[0]) == "skipped"
    assert delivered(router) == []
    audit = [e.event_type for e in tenant.read_stream(AUDIT_STREAM_ID)]
    assert audit.count("MessageReplayed") == 5 and audit.count("ReplayJobChanged") == 1
    forwarder.close()


def test_a_router_that_fails_holds_the_item_until_it_takes_it(
    store: EventStore, tenant: TenantEvents, replay_settings: Settings, work: tuple[ReplayQueue, QueueClient]
) -> None:
    [body] = record(store, tenant, 1)
    started = replay_bulk(
        store, replay_settings, tenant.tenant_id, MessageFilter(workflow_id="wf"), {"workflowId": "wf"},
        reason="test", requested_by="me",
    )  # fmt: skip
    job_id = started.job.job_id  # type: ignore[union-attr]
    queue, reader = work
    driver = ReplayDriver(store, replay_settings, lambda: queue)
    driver.drive_tenant(tenant.tenant_id)
    [message] = queued(reader)
    forwarder = Forwarder(store, replay_settings)
    # The router's queue does not exist yet: refused, held with its error, retried later.
    assert forwarder.forward(message) == "failed"
    status = job_status(store, tenant.tenant_id, job_id)
    assert status.job.state == "running" and status.counts.failing == 1 and status.counts.pending == 1
    assert status.job.last_error is not None and "does not exist" in status.job.last_error
    assert tenant.read_stream(AUDIT_STREAM_ID)[-1].event_type == "ReplayRequested"  # nothing recorded as sent
    # Fixed: the item is due again (its next attempt moved to now here) and goes out once.
    assert replay_settings.replay_router is not None
    router = QueueClient.from_connection_string(
        replay_settings.queue_connection_string, replay_settings.replay_router.queue or ""
    )
    router.create_queue()
    try:
        replays = store.replays(tenant.tenant_id)
        [item] = replays.items(job_id)
        assert item.state == "pending" and item.attempts == 1 and item.next_attempt_at is not None
        _due_now(store, tenant, job_id)
        driver.drive_tenant(tenant.tenant_id)
        [again] = queued(reader)
        assert forwarder.forward(again) == "sent"
        assert delivered(router) == [body]
        driver.drive_tenant(tenant.tenant_id)
        assert job_status(store, tenant.tenant_id, job_id).job.state == "finished"
    finally:
        router.delete_queue()
        router.close()
        forwarder.close()


def _due_now(store: EventStore, tenant: TenantEvents, job_id: Any) -> None:
    """Bring the item's next attempt forward (the test does not wait out the backoff)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(store.settings.database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("UPDATE {} SET next_attempt_at = now() WHERE job_id = %s").format(
                sql.Identifier(tenant.placement.schema_name, "replay_items")
            ),
            (job_id,),
        )


def test_the_requested_event_says_who_why_and_where(
    store: EventStore, tenant: TenantEvents, replay_settings: Settings
) -> None:
    record(store, tenant, 2)
    started = replay_bulk(
        store, replay_settings, tenant.tenant_id, MessageFilter(workflow_id="wf"), {"workflowId": "wf"},
        reason="bug 42 fixed", requested_by="ops@contoso.example", rate=3.0,
    )  # fmt: skip
    [event] = [e for e in tenant.read_stream(AUDIT_STREAM_ID) if e.event_type == "ReplayRequested"]
    payload = json.loads(event.payload or b"{}")
    assert payload["jobId"] == str(started.job.job_id)  # type: ignore[union-attr]
    assert (payload["reason"], payload["requestedBy"], payload["matched"], payload["rate"]) == (
        "bug 42 fixed", "ops@contoso.example", 2, 3.0,
    )  # fmt: skip
    assert payload["filter"] == {"workflowId": "wf"} and payload["target"].startswith("queue:router-")


def test_queueing_an_item_again_never_takes_it_from_the_forwarder_sending_it(
    store: EventStore, tenant: TenantEvents, replay_settings: Settings
) -> None:
    """Two drivers (the request's and the timer's) may queue the same item; the second must not turn the
    item a forwarder is sending back to `queued`, or that send would go unrecorded and be made again."""
    record(store, tenant, 1)
    started = replay_bulk(
        store, replay_settings, tenant.tenant_id, MessageFilter(workflow_id="wf"), {"workflowId": "wf"},
        reason="test", requested_by="me",
    )  # fmt: skip
    job_id = started.job.job_id  # type: ignore[union-attr]
    replays = store.replays(tenant.tenant_id)
    replays.mark_queued(job_id, [1])
    item = replays.claim(job_id, 1, 60)
    assert item is not None and replays.claim(job_id, 1, 60) is None  # one forwarder at a time
    replays.mark_queued(job_id, [1])  # the other driver's late mark
    assert [i.state for i in replays.items(job_id)] == ["sending"]
    sent = replayed_event(item, "queue:x", tenant.tenant_id)
    replays.mark_sent(item, sent, changed_event(job_id, "finished", by="replay", reason=None, counts=None))
    assert [i.state for i in replays.items(job_id)] == ["sent"]
    assert replays.job(job_id).state == "finished"  # type: ignore[union-attr]


def test_the_driver_queues_at_the_jobs_rate_whatever_the_timers_period(
    store: EventStore, tenant: TenantEvents, replay_settings: Settings, work: tuple[ReplayQueue, QueueClient]
) -> None:
    record(store, tenant, 6)
    started = replay_bulk(
        store, replay_settings, tenant.tenant_id, MessageFilter(workflow_id="wf"), {"workflowId": "wf"},
        reason="test", requested_by="me", rate=0.5,
    )  # fmt: skip
    job_id = started.job.job_id  # type: ignore[union-attr]
    replays = store.replays(tenant.tenant_id)
    queue, _ = work
    now = [1000.0]
    driver = ReplayDriver(store, replay_settings, lambda: queue, clock=lambda: now[0])

    def queued_positions() -> list[int]:
        return [i.position for i in replays.items(job_id) if i.state == "queued"]

    driver.drive_tenant(tenant.tenant_id)  # the first run: one, plus what 0.5/s allows in 5 s
    assert queued_positions() == [1, 2, 3]
    now[0] += 1.0  # half an item's worth, plus the half left over: one more
    driver.drive_tenant(tenant.tenant_id)
    assert queued_positions() == [1, 2, 3, 4]
    now[0] += 1.0  # half an item: none yet, however often the timer runs
    driver.drive_tenant(tenant.tenant_id)
    driver.drive_tenant(tenant.tenant_id)
    assert queued_positions() == [1, 2, 3, 4]
    now[0] += 5.0
    driver.drive_tenant(tenant.tenant_id)
    assert queued_positions() == [1, 2, 3, 4, 5, 6]


def test_a_router_failing_midway_through_a_batch_holds_the_rest_without_counting_attempts_they_never_had(
    store: EventStore, tenant: TenantEvents, replay_settings: Settings, work: tuple[ReplayQueue, QueueClient]
) -> None:
    record(store, tenant, 3)
    started = replay_bulk(
        store, replay_settings, tenant.tenant_id, MessageFilter(workflow_id="wf"), {"workflowId": "wf"},
        reason="test", requested_by="me",
    )  # fmt: skip
    job_id = started.job.job_id  # type: ignore[union-attr]
    forwarder = Forwarder(store, replay_settings)
    # The router's queue does not exist: the first send fails, the two after it are not tried.
    message = ForwardMessage(tenant_id=tenant.tenant_id, job_id=job_id, positions=(1, 2, 3))
    assert forwarder.forward(message) == "failed"
    first, *rest = store.replays(tenant.tenant_id).items(job_id)
    assert (first.state, first.attempts, first.last_error is not None) == ("pending", 1, True)
    assert [(i.state, i.attempts, i.next_attempt_at) for i in rest] == [("pending", 0, first.next_attempt_at)] * 2
    assert tenant.read_stream(AUDIT_STREAM_ID)[-1].event_type == "ReplayRequested"  # nothing recorded as sent
    forwarder.close()


def test_a_replays_queue_message_of_one_item_from_before_batches_still_reads() -> None:
    job_id = uuid4()
    old = ForwardMessage.model_validate_json(f'{{"tenantId": "t", "jobId": "{job_id}", "position": 7}}')
    assert (old.job_id, old.positions) == (job_id, (7,))
    with pytest.raises(ValidationError):
        ForwardMessage.model_validate_json(f'{{"tenantId": "t", "jobId": "{job_id}", "positions": []}}')
