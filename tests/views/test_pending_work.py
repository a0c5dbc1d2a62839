"""The timers' pending-work signal: a tenant's reader is skipped while its all-stream has not moved since
the reader was last found caught up with nothing in flight; an append, an open transaction or a full pass
brings it back."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
from azure.core.credentials import AzureKeyCredential

from eventstore import EventStore, TenantEvents, instance_stream_id
from eventstore.feed.publisher import FeedPublisher
from eventstore.feed.sinks import EventGridSink
from eventstore.store import PendingWork
from eventstore.views import INSTANCES, ViewRunner
from eventstore_local.standins.eventgrid import EventGridStandIn
from tests.helpers import event, random_tenant_id, settle


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def eventually(check: Callable[[], bool], seconds: float = 20.0) -> bool:
    """Whether `check` holds within `seconds`: settling needs a moment with no transaction in flight on
    the server, which other sessions on a shared server may delay."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def fresh(store: EventStore, count: int) -> list[TenantEvents]:
    tenants = []
    for _ in range(count):
        tenant_id = random_tenant_id()
        store.onboard_tenant(tenant_id)
        tenant = store.tenant(tenant_id)
        tenant.append(
            instance_stream_id("one"), [event({"newState": "s", "newStatus": "waiting"}, "TransitionCompleted")]
        )
        settle(store, tenant)
        tenants.append(tenant)
    return tenants


def test_settled_views_are_skipped_until_their_tenant_moves(store: EventStore) -> None:
    mine = fresh(store, 3)
    ids = {t.tenant_id for t in mine}
    clock = Clock()
    pending = PendingWork(store.pools, full_pass_seconds=60, clock=clock)
    runner = ViewRunner(store, [INSTANCES])
    first = runner.run_all(pending=pending)
    assert ids <= set(first) and all(first[t][0].applied == 1 for t in ids)
    # Nothing moved: once settled, every one of them is skipped (no session, no read).
    assert eventually(lambda: ids.isdisjoint(runner.run_all(pending=pending)))
    # One of them moves: that one alone runs again, and applies the new event.
    mine[0].append(instance_stream_id("two"), [event({"newState": "t"}, "TransitionCompleted")])
    settle(store, mine[0])
    again = runner.run_all(pending=pending)
    assert mine[0].tenant_id in again and again[mine[0].tenant_id][0].applied == 1
    assert ids.isdisjoint(set(again) - {mine[0].tenant_id})
    # The full pass runs every reader anyway.
    clock.now += 61
    assert ids <= set(runner.run_all(pending=pending))


def test_a_reader_is_skipped_only_once_two_runs_in_a_row_found_it_caught_up_at_one_head(store: EventStore) -> None:
    # One run may miss an event whose transaction had its position but not yet an id (not in flight, to the
    # check): the second run, a tick later, would see it. Only then is the reader skipped.
    [tenant] = fresh(store, 1)
    pending = PendingWork(store.pools, full_pass_seconds=3600)
    placement = tenant.placement

    def due() -> bool:
        return any(p.tenant_id == tenant.tenant_id for p, _, _ in pending.plan("probe", [placement]))

    assert due()  # the first plan is a full pass
    head = pending.heads("default").by_schema[placement.schema_name]
    pending.settle("probe", tenant.tenant_id, head)
    assert due(), "settled after one run: an event whose position was taken in that instant would wait an hour"
    pending.settle("probe", tenant.tenant_id, head)
    assert not due()
    pending.settle("probe", tenant.tenant_id, head + 1)  # found caught up at another head: once is not enough
    assert due()


def test_nothing_is_settled_while_a_transaction_is_in_flight(
    store: EventStore, owner_conn: psycopg.Connection[tuple[Any, ...]], database_url: str
) -> None:
    [tenant] = fresh(store, 1)
    pending = PendingWork(store.pools, full_pass_seconds=3600)
    runner = ViewRunner(store, [INSTANCES])
    with psycopg.connect(database_url) as other, other.transaction():
        other.execute("SELECT pg_current_xact_id()")  # an open transaction holding an id
        assert not pending.heads("default").quiet
        assert tenant.tenant_id in runner.run_all(pending=pending)
        assert tenant.tenant_id in runner.run_all(pending=pending)  # not settled: it runs again
    assert eventually(lambda: tenant.tenant_id not in runner.run_all(pending=pending))


def test_settled_feed_sinks_are_skipped_until_their_tenant_moves(store: EventStore) -> None:
    mine = fresh(store, 2)
    ids = {t.tenant_id for t in mine}
    pending = PendingWork(store.pools, full_pass_seconds=3600)
    with EventGridStandIn(key="k") as grid:
        sink = EventGridSink(
            grid.endpoint, AzureKeyCredential("k"), timeout=10, name=f"eventgrid-{random_tenant_id()[:8]}"
        )
        publisher = FeedPublisher(store, [sink])
        try:
            first = {r.tenant_id: r for r in publisher.publish_all(pending=pending)}
            assert ids <= set(first) and all(first[t].published == 1 for t in ids)
            assert eventually(lambda: ids.isdisjoint(r.tenant_id for r in publisher.publish_all(pending=pending)))
            mine[1].append(instance_stream_id("two"), [event()])
            again = {r.tenant_id: r for r in publisher.publish_all(pending=pending)}
            assert mine[0].tenant_id not in again and again[mine[1].tenant_id].published == 1
        finally:
            publisher.close()
