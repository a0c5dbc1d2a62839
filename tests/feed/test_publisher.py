"""The change feed's publisher against the local Event Grid stand-in and the real SDK client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from azure.core.credentials import AzureKeyCredential
from psycopg import sql
from pydantic import SecretStr

from eventstore import EventStore, EventType, Settings, TenantEvents
from eventstore.errors import InvalidInput
from eventstore.feed.publisher import FeedPublisher
from eventstore.feed.sinks import EVENT_GRID_SINK, EventGridSink
from eventstore.models import START, Checkpoint
from eventstore_local.standins.eventgrid import EventGridStandIn
from tests.helpers import event, feed_checkpoint, read_feed, settle

KEY = "feed-test-key"


@pytest.fixture
def grid() -> Iterator[EventGridStandIn]:
    with EventGridStandIn(key=KEY) as standin:
        yield standin


def publisher_for(
    store: EventStore, grid: EventGridStandIn, key: str = KEY, timeout: float = 5.0, **settings: Any
) -> FeedPublisher:
    merged = store.settings.model_copy(update={"feed_retry_seconds": 5.0, **settings})
    return FeedPublisher(
        store, [EventGridSink(grid.endpoint, AzureKeyCredential(key), timeout=timeout)], settings=merged
    )


def fill(store: EventStore, tenant: TenantEvents, streams: int = 3, per_stream: int = 4) -> list[str]:
    """Appends interleaved across streams; returns the event ids in append order, once all are readable."""
    ids = []
    for n in range(per_stream):
        for s in range(streams):
            new = event({"secret": "payloads never reach the feed", "n": n}, EventType.STEP_COMPLETED, workflow_id="wf")
            tenant.append(f"instance:i{s}", [new])
            ids.append(str(new.event_id))
    settle(store, tenant)
    return ids


def last_readable(tenant: TenantEvents) -> Checkpoint:
    page = tenant.read_all(START, limit=100_000)
    return page.next_checkpoint


def test_publishes_the_backlog_as_slim_cloudevents_in_stream_order(
    store: EventStore, tenant: TenantEvents, grid: EventGridStandIn
) -> None:
    ids = fill(store, tenant)
    feed = store.feed(tenant.tenant_id)
    publisher = publisher_for(store, grid)
    run = publisher.publish_tenant(tenant.tenant_id)
    assert run.locked and run.published == len(ids) and run.sinks[0].caught_up
    events = grid.events
    assert [e["id"] for e in events] == ids
    first = events[0]
    assert first["source"] == f"/tenants/{tenant.tenant_id}"
    assert first["subject"] == "workflowInstances/i0"
    assert first["type"] == "io.eventstore.workflow.step-completed"
    assert "secret" not in json.dumps(events)  # ids and positions only
    assert set(first["data"]) == {
        "tenantId", "workflowId", "workflowInstanceId", "eventId", "eventType", "streamId", "sequenceNumber",
        "globalPosition",
    }  # fmt: skip
    for s in range(3):
        sequence = [e["data"]["sequenceNumber"] for e in events if e["data"]["streamId"] == f"instance:i{s}"]
        assert sequence == [1, 2, 3, 4]
    assert feed_checkpoint(feed, EVENT_GRID_SINK) != START
    # Nothing new: nothing sent again.
    again = publisher.publish_tenant(tenant.tenant_id)
    assert again.published == 0 and len(grid.events) == len(ids)
    more = fill(store, tenant, streams=1, per_stream=2)
    assert publisher.publish_tenant(tenant.tenant_id).published == 2
    assert [e["id"] for e in grid.events] == ids + more


def test_batches_stay_under_the_byte_limit(store: EventStore, tenant: TenantEvents, grid: EventGridStandIn) -> None:
    ids = fill(store, tenant, streams=4, per_stream=10)
    publisher = publisher_for(store, grid, feed_batch_bytes=4096)
    assert publisher.publish_tenant(tenant.tenant_id).published == 40
    requests = [r for r in grid.requests if r.status == 200]
    assert len(requests) > 4 and all(r.body_size <= 4096 for r in requests)
    assert [e["id"] for e in grid.events] == ids


def test_event_count_per_request_is_bounded(store: EventStore, tenant: TenantEvents, grid: EventGridStandIn) -> None:
    fill(store, tenant, streams=2, per_stream=5)
    publisher = publisher_for(store, grid, feed_batch_events=3)
    assert publisher.publish_tenant(tenant.tenant_id).published == 10
    assert [r.event_count for r in grid.requests] == [3, 3, 3, 1]


def test_413_splits_the_batch_and_loses_nothing(
    store: EventStore, tenant: TenantEvents, grid: EventGridStandIn
) -> None:
    ids = fill(store, tenant, streams=2, per_stream=4)
    feed = store.feed(tenant.tenant_id)
    grid.reject_next(2, 413)  # the batch of 8, then its first half of 4
    run = publisher_for(store, grid).publish_tenant(tenant.tenant_id)
    assert run.published == 8 and run.sinks[0].dead_lettered == 0
    assert [e["id"] for e in grid.events] == ids
    assert [r.event_count for r in grid.requests if r.status == 200] == [2, 2, 4]
    assert feed.dead_letter_count() == 0


def test_a_refused_event_goes_to_the_dead_letters_and_the_feed_moves_on(
    store: EventStore, tenant: TenantEvents, grid: EventGridStandIn, owner_conn: Any
) -> None:
    ids = fill(store, tenant, streams=2, per_stream=2)
    feed = store.feed(tenant.tenant_id)
    grid.reject_next(3, 400)  # 4 events, then [0, 1], then [0]: only the first event is refused
    run = publisher_for(store, grid).publish_tenant(tenant.tenant_id)
    assert run.sinks[0].dead_lettered == 1 and run.published == 3 and run.sinks[0].caught_up
    assert [e["id"] for e in grid.events] == ids[1:]
    rows = owner_conn.execute(
        sql.SQL("SELECT sink, event_id::text, status, reason FROM {}").format(
            sql.Identifier(tenant.placement.schema_name, "feed_dead_letters")
        )
    ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [(EVENT_GRID_SINK, ids[0], 400)]
    assert "400" in rows[0][3] or "answer 400" in rows[0][3]
    assert feed_checkpoint(feed, EVENT_GRID_SINK).global_position >= 4


def test_server_errors_are_retried_with_backoff(
    store: EventStore, tenant: TenantEvents, grid: EventGridStandIn
) -> None:
    ids = fill(store, tenant, streams=1, per_stream=3)
    grid.fail_next(2, 503)
    run = publisher_for(store, grid).publish_tenant(tenant.tenant_id)
    assert run.published == 3 and run.sinks[0].requests == 3
    assert [r.status for r in grid.requests] == [503, 503, 200]
    assert [e["id"] for e in grid.events] == ids


def test_a_failing_sink_is_held_and_catches_up_later(
    store: EventStore, tenant: TenantEvents, grid: EventGridStandIn
) -> None:
    ids = fill(store, tenant, streams=1, per_stream=3)
    feed = store.feed(tenant.tenant_id)
    grid.fail_next(2, 500)
    publisher = publisher_for(store, grid, feed_retry_seconds=0.0)
    run = publisher.publish_tenant(tenant.tenant_id)
    assert run.published == 0 and run.sinks[0].error and "500" in run.sinks[0].error
    assert feed_checkpoint(feed, EVENT_GRID_SINK) == START
    state = feed.sink_states()[EVENT_GRID_SINK]
    assert state.failing_since is not None and state.last_error and "500" in state.last_error
    publisher.publish_tenant(tenant.tenant_id)  # still failing: the failure start stays the first one
    assert feed.sink_states()[EVENT_GRID_SINK].failing_since == state.failing_since
    assert publisher.publish_tenant(tenant.tenant_id).published == 3
    assert [e["id"] for e in grid.events] == ids
    healed = feed.sink_states()[EVENT_GRID_SINK]
    assert healed.failing_since is None and healed.last_error is None and healed.last_success_at is not None


def test_a_wrong_key_holds_the_feed_without_dead_letters(
    store: EventStore, tenant: TenantEvents, grid: EventGridStandIn
) -> None:
    fill(store, tenant, streams=1, per_stream=2)
    feed = store.feed(tenant.tenant_id)
    run = publisher_for(store, grid, key="rotated-away").publish_tenant(tenant.tenant_id)
    assert run.published == 0 and run.sinks[0].error and "401" in run.sinks[0].error
    assert feed.dead_letter_count() == 0 and feed_checkpoint(feed, EVENT_GRID_SINK) == START
    assert publisher_for(store, grid).publish_tenant(tenant.tenant_id).published == 2


def test_a_timeout_is_retried(store: EventStore, tenant: TenantEvents, grid: EventGridStandIn) -> None:
    ids = fill(store, tenant, streams=1, per_stream=2)
    grid.hang_next(1, seconds=3)
    run = publisher_for(store, grid, timeout=0.5).publish_tenant(tenant.tenant_id)
    assert run.published == 2 and run.sinks[0].requests == 2
    assert [e["id"] for e in grid.events] == ids


def test_one_publisher_per_tenant_and_sink(store: EventStore, tenant: TenantEvents, grid: EventGridStandIn) -> None:
    fill(store, tenant, streams=1, per_stream=2)
    publisher = publisher_for(store, grid)
    feed = store.feed(tenant.tenant_id)
    with feed.session(EVENT_GRID_SINK) as held:
        assert held is not None
        with feed.session(EVENT_GRID_SINK) as second:
            assert second is None
        with feed.session("webhook:other") as other_sink:
            assert other_sink is not None  # another sink of the same tenant is not held back
        run = publisher.publish_tenant(tenant.tenant_id)
        assert not run.locked and run.published == 0 and grid.events == []
    assert publisher.publish_tenant(tenant.tenant_id).published == 2


def test_a_batch_refused_alike_holds_the_sink_instead_of_dead_lettering_it(
    store: EventStore, tenant: TenantEvents, grid: EventGridStandIn
) -> None:
    fill(store, tenant, streams=2, per_stream=2)
    feed = store.feed(tenant.tenant_id)
    grid.reject_next(7, 400)  # 4, 2, 1, 1 (and more): every event is refused on its own as well
    run = publisher_for(store, grid).publish_tenant(tenant.tenant_id)
    assert run.published == 0 and run.sinks[0].error and "refused" in run.sinks[0].error
    assert feed.dead_letter_count() == 0 and feed_checkpoint(feed, EVENT_GRID_SINK) == START
    assert "refused" in (feed.sink_states()[EVENT_GRID_SINK].last_error or "")


def test_a_small_batch_refused_alike_holds_then_after_the_hold_is_dead_lettered(
    store: EventStore, tenant: TenantEvents, grid: EventGridStandIn
) -> None:
    fill(store, tenant, streams=1, per_stream=3)
    feed = store.feed(tenant.tenant_id)
    grid.reject_next(5, 400)  # [3], [1], [2], [1], [1]: three single refusals, under the streak limit
    publisher = publisher_for(store, grid, feed_refusal_hold_seconds=0.0)
    held = publisher.publish_tenant(tenant.tenant_id)
    assert held.sinks[0].error and "every event refused alike" in held.sinks[0].error
    assert feed.dead_letter_count() == 0 and feed_checkpoint(feed, EVENT_GRID_SINK) == START
    # Held once already, for longer than the hold allows (0 s here): now they are the events' fault.
    grid.reject_next(5, 400)
    moved_on = publisher.publish_tenant(tenant.tenant_id)
    assert moved_on.sinks[0].error is None and moved_on.sinks[0].dead_lettered == 3
    assert feed.dead_letter_count(EVENT_GRID_SINK) == 3 and feed_checkpoint(feed, EVENT_GRID_SINK) != START


def test_drains_need_one_connection_each(settings: Settings, grid: EventGridStandIn) -> None:
    """A drain holds its lock's connection and does everything on it: a pool of 2 serves many tenants."""
    from tests.helpers import random_tenant_id

    with EventStore(settings.model_copy(update={"pool_max_size": 2})) as small:
        tenants = []
        for _ in range(5):
            tenant_id = random_tenant_id()
            small.onboard_tenant(tenant_id)
            tenants.append(small.tenant(tenant_id))
            fill(small, tenants[-1], streams=1, per_stream=2)
        publisher = FeedPublisher(
            small, [EventGridSink(grid.endpoint, AzureKeyCredential(KEY))],
            settings=small.settings.model_copy(update={"feed_retry_seconds": 2.0}), workers=2,
        )  # fmt: skip
        runs = {r.tenant_id: r for r in publisher.publish_all()}
        assert all(runs[t.tenant_id].published == 2 and runs[t.tenant_id].sinks[0].error is None for t in tenants)
        publisher.close()


def test_415_means_the_sink_is_wrong_not_the_events(
    store: EventStore, tenant: TenantEvents, grid: EventGridStandIn
) -> None:
    fill(store, tenant, streams=1, per_stream=2)
    feed = store.feed(tenant.tenant_id)
    grid.reject_next(1, 415)
    run = publisher_for(store, grid).publish_tenant(tenant.tenant_id)
    assert run.published == 0 and run.sinks[0].error and "415" in run.sinks[0].error
    assert run.sinks[0].requests == 1 and feed.dead_letter_count() == 0


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from eventstore.feed.sinks import retry_after_seconds

    assert retry_after_seconds("3") == 3.0 and retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    later = retry_after_seconds(format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True))
    assert later is not None and 25 <= later <= 31


def test_publish_all_covers_every_tenant(store: EventStore, grid: EventGridStandIn) -> None:
    from tests.helpers import random_tenant_id

    tenants = []
    for _ in range(2):
        tenant_id = random_tenant_id()
        store.onboard_tenant(tenant_id)
        tenants.append(store.tenant(tenant_id))
        fill(store, tenants[-1], streams=1, per_stream=1)
    publisher_for(store, grid).publish_all()
    sources = {e["source"] for e in grid.events}
    assert {f"/tenants/{t.tenant_id}" for t in tenants} <= sources


def test_switched_off_means_no_sinks(settings: Settings) -> None:
    from eventstore.feed.config import sinks_from_settings

    on = settings.model_copy(
        update={"eventgrid_endpoint": "http://127.0.0.1:1/api/events", "eventgrid_key": SecretStr("k")}
    )
    assert [s.name for s in sinks_from_settings(on)] == [EVENT_GRID_SINK]
    assert sinks_from_settings(on.model_copy(update={"feed_enabled": False})) == []
    assert sinks_from_settings(on.model_copy(update={"eventgrid_enabled": False})) == []


def test_redrive_sends_the_dead_letters_again(store: EventStore, tenant: TenantEvents, grid: EventGridStandIn) -> None:
    ids = fill(store, tenant, streams=2, per_stream=2)
    feed = store.feed(tenant.tenant_id)
    publisher = publisher_for(store, grid)
    grid.reject_next(3, 400)  # the first event is refused on its own; the others go out
    assert publisher.publish_tenant(tenant.tenant_id).sinks[0].dead_lettered == 1
    assert feed.dead_letter_count(EVENT_GRID_SINK) == 1
    grid.reject_next(1, 409)  # the first redrive is refused again: it stays, with the new reason
    again = publisher.redrive(tenant.tenant_id, EVENT_GRID_SINK)
    assert again.published == 0 and again.dead_lettered == 1
    assert feed.dead_letter_count(EVENT_GRID_SINK) == 1
    redriven = publisher.redrive(tenant.tenant_id, EVENT_GRID_SINK)
    assert redriven.published == 1 and redriven.dead_lettered == 0 and redriven.caught_up
    assert feed.dead_letter_count(EVENT_GRID_SINK) == 0
    assert [e["id"] for e in grid.events] == ids[1:] + ids[:1]  # after the others: redrive is out of order
    assert publisher.redrive(tenant.tenant_id, EVENT_GRID_SINK).published == 0  # nothing left
    with pytest.raises(InvalidInput):
        publisher.redrive(tenant.tenant_id, "webhook:none")


def test_the_pipeline_sink_sends_what_the_sdk_client_sends(
    store: EventStore, tenant: TenantEvents, grid: EventGridStandIn
) -> None:
    """The default sink posts the batch's bytes through azure-core; the SDK client (EVENTSTORE_EVENTGRID_CLIENT
    =sdk) re-serialises the events. On the wire the two requests must be the same."""
    from eventstore.feed.sinks import EventGridSdkSink

    fill(store, tenant, streams=2, per_stream=3)
    feed = store.feed(tenant.tenant_id)
    entries = read_feed(feed, START, 100)
    batches = publisher_for(store, grid)._batches(feed, entries)
    assert len(batches) == 1
    batch = batches[0][1]
    EventGridSink(grid.endpoint, AzureKeyCredential(KEY)).send(batch)
    EventGridSdkSink(grid.endpoint, AzureKeyCredential(KEY)).send(batch)
    ours, sdk = grid.requests
    assert (ours.method, ours.path, ours.query, ours.status) == (sdk.method, sdk.path, sdk.query, sdk.status)
    assert ours.body_size == batch.size and ours.status == 200
    for header in ("content-type", "aeg-sas-key"):
        assert ours.headers[header] == sdk.headers[header]
    # The SDK re-renders `time` (it drops trailing zeros of the fraction); the instant is the same.
    assert sdk.body_size <= ours.body_size <= sdk.body_size + 6 * len(entries)
    events = [{**e, "time": datetime.fromisoformat(e["time"])} for e in grid.events]
    assert events[: len(entries)] == events[len(entries) :]
    assert grid.events[: len(entries)] == batch.events
    # And the SDK path classifies failures the same way (413 split here).
    grid.clear()
    grid.reject_next(1, 413)
    sdk_publisher = FeedPublisher(
        store, [EventGridSdkSink(grid.endpoint, AzureKeyCredential(KEY), name="eventgrid-sdk")],
        settings=store.settings.model_copy(update={"feed_retry_seconds": 2.0}),
    )  # fmt: skip
    assert sdk_publisher.publish_tenant(tenant.tenant_id).published == 6
    assert [r.status for r in grid.requests] == [413, 200, 200]
