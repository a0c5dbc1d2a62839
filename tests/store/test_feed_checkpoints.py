from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from eventstore import START, Checkpoint, EventStore, TenantEvents
from eventstore.store import DeadLetter
from tests.helpers import dead_letter, event, feed_checkpoint, feed_session


def test_each_sink_has_its_own_checkpoint_that_only_moves_forward(store: EventStore, tenant: TenantEvents) -> None:
    tenant.append("s", [event() for _ in range(5)])
    page = tenant.read_all(limit=2)
    feed = store.feed(tenant.tenant_id)
    assert feed_checkpoint(feed, "eventgrid") == START
    with feed_session(feed, "eventgrid") as eventgrid:
        assert eventgrid.complete_batch(page.next_checkpoint) == page.next_checkpoint
        assert feed_checkpoint(feed, "eventgrid") == page.next_checkpoint
        assert feed_checkpoint(feed, "webhook:a") == START  # a slow sink never holds back the others
        end = tenant.read_all(page.next_checkpoint).next_checkpoint
        assert eventgrid.complete_batch(end) == end
        # A publisher that lost a race and saves an older checkpoint cannot move it back.
        assert eventgrid.complete_batch(page.next_checkpoint) == end
        assert feed_checkpoint(feed, "eventgrid") == end
        assert eventgrid.complete_batch(Checkpoint(end.transaction_id, end.global_position)) == end


def test_dead_letters_are_recorded_once_per_sink_and_event(
    store: EventStore, tenant: TenantEvents, owner_conn: psycopg.Connection[tuple[Any, ...]]
) -> None:
    tenant.append("s", [event(), event()])
    first, second = tenant.read_stream("s")
    tenant_id = tenant.tenant_id
    dead_letter(store, tenant_id, "webhook:a", [DeadLetter(first, 400, "bad request"), DeadLetter(second, 404, "gone")])
    dead_letter(store, tenant_id, "webhook:a", [DeadLetter(first, 410, "republished after a crash")])
    dead_letter(store, tenant_id, "eventgrid", [DeadLetter(first, 400, "refused")])
    feed = store.feed(tenant_id)
    assert feed.dead_letter_count("webhook:a") == 2
    assert feed.dead_letter_count() == 3
    row = owner_conn.execute(
        sql.SQL("SELECT status, reason FROM {} WHERE sink = %s AND event_id = %s").format(
            sql.Identifier(tenant.placement.schema_name, "feed_dead_letters")
        ),
        ("webhook:a", first.event_id),
    ).fetchone()
    assert row == (410, "republished after a crash")


def test_the_application_role_may_not_remove_feed_state(
    tenant: TenantEvents, app_conn: psycopg.Connection[tuple[Any, ...]]
) -> None:
    for table in ("feed_checkpoints", "feed_dead_letters"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(tenant.placement.schema_name, table)))
