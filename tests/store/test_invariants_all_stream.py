"""The all-stream never skips, and a stream's writers queue without a transaction id: deterministic cases.

The slow randomised races in test_all_stream.py and test_concurrency.py find these only by luck. Here
the interleavings are built by hand, with transactions held open on connections of their own:

- A takes its transaction id first and its global position last; B, in between, takes a higher id, a
  lower position, and commits first. While A runs, no reader (all-stream, feed, search) may pass B, or
  it would move its checkpoint past A's lower id and never return A. Once A commits, both come back in
  (transaction id, global position) order, which here is the reverse of position order, also one event
  per page, from a checkpoint taken while A was running.
- A writer that waits for a stream another writer holds has no transaction id while it waits: ids are
  handed out in the order writers get the stream, which is what keeps a stream's events in sequence
  order on the all-stream. Then the compare-and-set decides, against what the first writer committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest

from eventstore import (
    START,
    AppendResult,
    Checkpoint,
    ConcurrencyConflict,
    EventStore,
    RecordedEvent,
    Settings,
    StreamState,
    TenantEvents,
)
from eventstore.models import ExpectedVersion
from tests.helpers import Connection, app_connection, append_on, event, feed_waiting, read_feed


def current_xid(conn: Connection) -> int:
    row = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
    assert row is not None
    return int(row[0])


def readable(tenant: TenantEvents, count: int) -> list[RecordedEvent]:
    """The tenant's all-stream once `count` events are readable. Only another session's open transaction
    (on a shared server) can keep committed events back; that wait is bounded."""
    deadline = time.monotonic() + 30
    while True:
        events = tenant.read_all(START).events
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.01)


def one_by_one(read: Callable[[Checkpoint], tuple[list[UUID], Checkpoint]], after: Checkpoint) -> list[UUID]:
    """Every event after `after`, one per read, following the reader's checkpoints."""
    seen: list[UUID] = []
    for _ in range(10):
        ids, after = read(after)
        if not ids:
            break
        seen += ids
    return seen


def test_a_lower_transaction_id_with_a_higher_position_is_never_skipped_or_reordered(
    store: EventStore, tenant: TenantEvents, settings: Settings, app_conn: Connection
) -> None:
    event_a, event_b = event({"who": "A"}), event({"who": "B"})
    tenant_feed = store.feed(tenant.tenant_id)
    with app_conn.transaction():
        xid_a = current_xid(app_conn)  # A's id is taken now, before B exists
        result_b = tenant.append("instance:b", [event_b])  # commits at once, on a pool connection
        result_a = append_on(app_conn, tenant, settings, "instance:a", [event_a])
        assert result_a.global_positions[0] > result_b.global_positions[0]

        # B is committed and visible to plain queries, but a reader that returned it now would set its
        # checkpoint to (B's id, B's position), past A's lower id: A would never be returned.
        assert [e.event_id for e in tenant.read_stream("instance:b")] == [event_b.event_id]
        held = tenant.read_all(START)
        assert held.events == [] and held.next_checkpoint == START and not held.more
        assert tenant.read_all(START, limit=1).events == []
        assert read_feed(tenant_feed, START, 10) == []
        assert tenant.search(START).events == []
        assert tenant.search(START, stream_id="instance:b").events == []
        assert feed_waiting(tenant_feed, START)  # there is something, just not readable yet
        checkpoint_while_open = held.next_checkpoint

    both = readable(tenant, 2)
    assert [e.event_id for e in both] == [event_a.event_id, event_b.event_id]
    a, b = both
    assert a.transaction_id == xid_a < b.transaction_id
    assert a.global_position > b.global_position  # the order is not the positions' order

    def all_stream(after: Checkpoint) -> tuple[list[UUID], Checkpoint]:
        page = tenant.read_all(after, limit=1)
        return [e.event_id for e in page.events], page.next_checkpoint

    def feed(after: Checkpoint) -> tuple[list[UUID], Checkpoint]:
        entries = read_feed(tenant_feed, after, 1)
        return [e.event_id for e in entries], entries[-1].checkpoint if entries else after

    def search(after: Checkpoint) -> tuple[list[UUID], Checkpoint]:
        page = tenant.search(after, limit=1)
        return [e.event_id for e in page.events], page.next_checkpoint

    for reader in (all_stream, feed, search):
        assert one_by_one(reader, checkpoint_while_open) == [event_a.event_id, event_b.event_id], reader.__name__
    first = tenant.read_all(checkpoint_while_open, limit=1)
    assert first.next_checkpoint == Checkpoint(a.transaction_id, a.global_position) and first.more
    assert [e.event_id for e in tenant.read_all(first.next_checkpoint).events] == [event_b.event_id]


def test_a_transaction_appending_around_another_commit_comes_back_whole_before_it(
    store: EventStore, tenant: TenantEvents, settings: Settings, app_conn: Connection
) -> None:
    """The ordinary way to get a low id with a high position: a transaction that appends twice, with
    another writer's commit in between."""
    first, second, other = event({"n": 1}), event({"n": 2}), event({"n": "other"})
    with app_conn.transaction():
        append_on(app_conn, tenant, settings, "instance:long", [first])
        tenant.append("instance:short", [other])
        append_on(app_conn, tenant, settings, "instance:long", [second])
        assert tenant.read_all(START).events == [] and read_feed(store.feed(tenant.tenant_id), START, 10) == []
    events = readable(tenant, 3)
    assert [e.event_id for e in events] == [first.event_id, second.event_id, other.event_id]
    positions = [e.global_position for e in events]
    assert positions[1] > positions[2] > positions[0]


class Waiter:
    """An append on a connection of its own, in a thread, so that the test can watch it wait."""

    def __init__(self, conn: Connection, call: Callable[[Connection], AppendResult]) -> None:
        self.pid = conn.info.backend_pid
        self.result: AppendResult | None = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = call(conn)
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, name="queued-writer")
        self.thread.start()

    def wait_until_blocked(self, observer: Connection) -> tuple[Any, ...]:
        """pg_stat_activity's (backend_xid, wait_event_type, wait_event) once the writer waits on a lock."""
        deadline = time.monotonic() + 30
        while True:
            row = observer.execute(
                "SELECT backend_xid::text, wait_event_type, wait_event FROM pg_stat_activity WHERE pid = %s",
                (self.pid,),
            ).fetchone()
            assert row is not None
            if row[1] == "Lock":
                return tuple(row)
            assert self.thread.is_alive(), f"the second writer did not wait: {self.result or self.error!r}"
            assert time.monotonic() < deadline, f"the second writer never waited: {row}"
            time.sleep(0.005)

    def join(self) -> None:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


@pytest.mark.parametrize(
    ("expected", "outcome"),
    [(1, "conflict"), (StreamState.STREAM_EXISTS, "after"), (StreamState.ANY, "after")],
    ids=["exact", "stream-exists", "any"],
)
def test_a_writer_queued_behind_another_on_one_stream_has_no_transaction_id_then_the_version_decides(
    tenant: TenantEvents,
    settings: Settings,
    app_conn: Connection,
    owner_conn: Connection,
    expected: ExpectedVersion,
    outcome: str,
) -> None:
    stream_id = "instance:contended"
    tenant.append(stream_id, [event({"n": "seed"})])
    held, queued = event({"n": "held"}), event({"n": "queued"})
    with app_connection(settings) as second_conn:
        waiter: Waiter | None = None
        try:
            with app_conn.transaction():
                xid_first = current_xid(app_conn)
                assert append_on(app_conn, tenant, settings, stream_id, [held], 1).sequence_numbers == (2,)
                waiter = Waiter(
                    second_conn, lambda conn: append_on(conn, tenant, settings, stream_id, [queued], expected)
                )
                xid, wait_type, wait_event = waiter.wait_until_blocked(owner_conn)
                # Waiting assigned it no id: when it gets the stream, its id is newer than the holder's
                # (and than anything that began meanwhile), so the all-stream keeps the stream's order.
                assert xid is None, f"a writer queued for the stream already holds transaction id {xid}"
                assert (wait_type, wait_event) == ("Lock", "advisory")
        finally:
            if waiter is not None:
                waiter.join()
    assert waiter is not None
    if outcome == "conflict":
        assert isinstance(waiter.error, ConcurrencyConflict), waiter.error
        assert waiter.error.actual_version == 2
        assert [e.event_id for e in tenant.read_stream(stream_id, 2)] == [held.event_id]
    else:
        assert waiter.error is None and waiter.result is not None
        assert waiter.result.sequence_numbers == (3,)
        stream = readable(tenant, 3)
        assert [(e.event_id, e.sequence_number) for e in stream[1:]] == [(held.event_id, 2), (queued.event_id, 3)]
        assert xid_first == stream[1].transaction_id < stream[2].transaction_id
    assert tenant.stream_version(stream_id) == (2 if outcome == "conflict" else 3)
