"""The feed's checkpoint moves only past what a sink took, batch by batch within a page.

The publisher reads a page of the all-stream (up to `feed_batch_events`) and sends it in batches under
`feed_batch_bytes`. The checkpoint must be saved at the end of each delivered batch, never at the end of
the page: if the page's second batch fails, the checkpoint stays at the end of the first, and the next
run sends the rest. Saved at the end of the page, that failure would lose the rest of the page for good.
The sink is the real local Event Grid stand-in, told to take one request and fail the next.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from azure.core.credentials import AzureKeyCredential

from eventstore import EventStore, TenantEvents
from eventstore.feed.cloudevents import to_cloudevent
from eventstore.feed.publisher import FeedPublisher
from eventstore.feed.sinks import EVENT_GRID_SINK, EventGridSink, encode
from eventstore.models import START
from eventstore.store import FeedEntry
from eventstore_local.standins.eventgrid import EventGridStandIn
from tests.helpers import event, feed_checkpoint, read_feed

KEY = "feed-invariant-key"


@pytest.fixture
def grid() -> Iterator[EventGridStandIn]:
    with EventGridStandIn(key=KEY) as standin:
        yield standin


def appended(store: EventStore, tenant: TenantEvents, count: int) -> list[FeedEntry]:
    """`count` events over two streams, once the feed can read them all (another session's open
    transaction on a shared server can hold them back for a while)."""
    for n in range(count):
        tenant.append(f"instance:s{n % 2}", [event({"n": n})])
    deadline = time.monotonic() + 30
    feed = store.feed(tenant.tenant_id)
    while len(entries := read_feed(feed, START, 1000)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(entries) == count
    return entries


def test_a_failure_on_a_pages_second_batch_keeps_the_checkpoint_at_the_end_of_the_first(
    store: EventStore, tenant: TenantEvents, grid: EventGridStandIn
) -> None:
    entries = appended(store, tenant, 7)
    feed = store.feed(tenant.tenant_id)
    ids = [str(e.event_id) for e in entries]
    sizes = [len(encode(to_cloudevent(tenant.tenant_id, e, store.settings.feed_type_prefix))) for e in entries]
    # Room for two events per request, never three; one page holds every event.
    batch_bytes = 2 + 2 * (max(sizes) + 2) + min(sizes) // 2
    settings = store.settings.model_copy(
        update={"feed_batch_events": 100, "feed_batch_bytes": batch_bytes, "feed_retry_seconds": 0.0}
    )
    publisher = FeedPublisher(store, [EventGridSink(grid.endpoint, AzureKeyCredential(KEY))], settings=settings)
    try:
        # The first request is taken (a hang of no time that then accepts), the second answered 503.
        grid.hang_next(1, seconds=0.0, accept=True)
        grid.fail_next(1, 503)
        failed = publisher.publish_tenant(tenant.tenant_id)
        assert failed.sinks[0].error and "503" in failed.sinks[0].error
        assert [r.status for r in grid.requests] == [200, 503]
        taken = grid.requests[0].event_count
        assert 1 <= taken < len(entries) and failed.published == taken
        assert [e["id"] for e in grid.events] == ids[:taken]
        assert feed_checkpoint(feed, EVENT_GRID_SINK) == entries[taken - 1].checkpoint

        # The next run starts right after the first batch: nothing lost, nothing sent twice.
        healed = publisher.publish_tenant(tenant.tenant_id)
        assert healed.sinks[0].error is None and healed.published == len(entries) - taken
        assert [e["id"] for e in grid.events] == ids
        assert all(r.event_count <= 2 for r in grid.requests)
        assert feed_checkpoint(feed, EVENT_GRID_SINK) == entries[-1].checkpoint
    finally:
        publisher.close()
