"""The all-stream: commit-safe order, no skipped or duplicated event, paging by checkpoint.

Writers here are real app-role connections in explicit transactions, so commits can be held open and
interleaved on purpose; readers go through `TenantEvents.read_all` like the change feed does.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from itertools import pairwise
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql

from eventstore import START, Checkpoint, EventStore, RecordedEvent, Settings, StreamState, TenantEvents
from tests.helpers import Connection, app_connection, append_on, event, run_threads, settle


def read_everything(tenant: TenantEvents, after: Checkpoint = START, limit: int = 1000) -> list[RecordedEvent]:
    events: list[RecordedEvent] = []
    while True:
        page = tenant.read_all(after, limit=limit)
        events.extend(page.events)
        after = page.next_checkpoint
        if not page.more:
            return events


def test_an_open_transaction_holds_back_later_commits_and_is_never_skipped(
    tenant: TenantEvents, settings: Settings, app_conn: Connection, owner_conn: Connection
) -> None:
    schema = tenant.placement.schema_name
    earlier = event({"who": "earlier"})
    tenant.append("audit", [earlier])
    first_page = tenant.read_all()
    assert [e.event_id for e in first_page.events] == [earlier.event_id]
    before = first_page.next_checkpoint

    event_a, event_b = event({"who": "A"}), event({"who": "B"})
    with app_conn.transaction():
        result_a = append_on(app_conn, tenant, settings, "instance:a", [event_a])
        result_b = tenant.append("instance:b", [event_b])  # commits at once, on a pool connection
        assert result_b.global_positions[0] > result_a.global_positions[0]

        # The trap: ordered by global position alone, B is visible and A (lower, uncommitted) is not,
        # so a naive reader would move its checkpoint past A and never see it.
        naive = owner_conn.execute(
            sql.SQL("SELECT event_id FROM {} WHERE global_position > %s ORDER BY global_position").format(
                sql.Identifier(schema, "events")
            ),
            (before.global_position,),
        ).fetchall()
        assert naive == [(event_b.event_id,)]
        assert [e.event_id for e in tenant.read_stream("instance:b")] == [event_b.event_id]

        held = tenant.read_all(before)
        assert held.events == []
        assert held.next_checkpoint == before
        assert not held.more
        held_small = tenant.read_all(before, limit=1)
        assert held_small.events == [] and held_small.next_checkpoint == before

    after_commit = tenant.read_all(before)
    assert [e.event_id for e in after_commit.events] == [event_a.event_id, event_b.event_id]
    assert not after_commit.more
    # One event at a time from the old checkpoint: A first, then B, then nothing.
    one = tenant.read_all(held.next_checkpoint, limit=1)
    assert [e.event_id for e in one.events] == [event_a.event_id] and one.more
    two = tenant.read_all(one.next_checkpoint, limit=1)
    assert [e.event_id for e in two.events] == [event_b.event_id] and not two.more
    assert tenant.read_all(two.next_checkpoint).events == []
    assert before < one.next_checkpoint < two.next_checkpoint


def test_a_rolled_back_transaction_releases_the_feed_and_leaves_nothing(
    tenant: TenantEvents, settings: Settings, app_conn: Connection
) -> None:
    doomed, survivor = event({"who": "doomed"}), event({"who": "survivor"})
    with app_conn.transaction():
        append_on(app_conn, tenant, settings, "instance:doomed", [doomed])
        tenant.append("instance:survivor", [survivor])
        assert tenant.read_all().events == []
        raise psycopg.Rollback()
    assert [e.event_id for e in read_everything(tenant)] == [survivor.event_id]
    assert tenant.stream_version("instance:doomed") == 0


@dataclass
class TailingRun:
    """Writers committing out of order on connections of their own, and one reader tailing the feed."""

    tenant: TenantEvents
    settings: Settings
    streams: list[str]
    appends_per_writer: int = 30
    lock: threading.Lock = field(default_factory=threading.Lock)
    committed: dict[UUID, tuple[str, int]] = field(default_factory=dict)
    rolled_back: set[UUID] = field(default_factory=set)
    writers_done: threading.Event = field(default_factory=threading.Event)
    read: list[RecordedEvent] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=lambda: [START])
    pages_while_writing: int = 0
    reader_errors: list[BaseException] = field(default_factory=list)

    def write(self, index: int) -> None:
        rng = random.Random(index)
        with app_connection(self.settings) as conn:
            for n in range(self.appends_per_writer):
                stream_id = rng.choice(self.streams)
                batch = [event({"writer": index, "append": n, "item": i}) for i in range(rng.randint(1, 3))]
                roll_back = rng.random() < 0.15
                with conn.transaction():
                    result = append_on(conn, self.tenant, self.settings, stream_id, batch)
                    time.sleep(rng.uniform(0, 0.02))
                    if roll_back:
                        raise psycopg.Rollback()
                with self.lock:
                    if roll_back:
                        self.rolled_back.update(e.event_id for e in batch)
                    else:
                        for e, sequence in zip(batch, result.sequence_numbers, strict=True):
                            self.committed[e.event_id] = (stream_id, sequence)

    def tail(self) -> None:
        checkpoint = START
        deadline: float | None = None
        try:
            while True:
                done = self.writers_done.is_set()  # read before the page: a page after `done` sees every commit
                page = self.tenant.read_all(checkpoint, limit=7)
                self.read.extend(page.events)
                self.checkpoints.append(page.next_checkpoint)
                checkpoint = page.next_checkpoint
                if page.events and not done:
                    self.pages_while_writing += 1
                if done and not page.events and not page.more:
                    # Drained. Another session's open transaction (on a shared server) could still hold
                    # the feed back, so wait for the count, bounded.
                    deadline = deadline or time.monotonic() + 10
                    if len(self.read) >= len(self.committed) or time.monotonic() > deadline:
                        return
                if not page.events:
                    time.sleep(0.001)
        except BaseException as exc:
            self.reader_errors.append(exc)


@pytest.mark.slow
def test_no_skipped_or_duplicated_event_when_a_reader_tails_while_8_writers_commit_out_of_order(
    tenant: TenantEvents, settings: Settings
) -> None:
    run = TailingRun(tenant, settings, streams=[f"instance:tail-{i}" for i in range(20)])
    # The streams exist before the race starts: concurrent *creation* of a stream is the subject of
    # test_all_stream_keeps_each_streams_order_when_writers_create_it_concurrently.
    for stream_id in run.streams:
        seed = event({"seed": stream_id})
        run.committed[seed.event_id] = (stream_id, tenant.append(stream_id, [seed]).sequence_numbers[0])

    reader = threading.Thread(target=run.tail, name="tail")
    reader.start()
    try:
        run_threads(8, run.write)
    finally:
        run.writers_done.set()
        reader.join(timeout=120)
    assert not reader.is_alive()
    if run.reader_errors:
        raise run.reader_errors[0]

    read_ids = [e.event_id for e in run.read]
    assert len(read_ids) == len(set(read_ids)), "an event was delivered twice"
    assert not set(read_ids) & run.rolled_back, "a rolled-back event was delivered"
    assert set(read_ids) - set(run.committed) == set(), "an event nobody committed was delivered"
    assert set(run.committed) - set(read_ids) == set(), "a committed event was skipped"
    assert run.rolled_back, "the test meant to roll some transactions back"
    assert run.pages_while_writing > 0, "the reader never read while the writers were running"

    last_sequence: dict[str, int] = {}
    for recorded in run.read:
        assert run.committed[recorded.event_id] == (recorded.stream_id, recorded.sequence_number)
        previous = last_sequence.get(recorded.stream_id, 0)
        assert recorded.sequence_number > previous, (recorded.stream_id, previous, recorded.sequence_number)
        last_sequence[recorded.stream_id] = recorded.sequence_number
    keys = [(e.transaction_id, e.global_position) for e in run.read]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert all(a <= b for a, b in pairwise(run.checkpoints)), "a checkpoint went back"

    # Rolled-back appends left no hole behind them either: every stream is still gapless.
    for stream_id in run.streams:
        stored = tenant.read_stream(stream_id)
        assert [e.sequence_number for e in stored] == list(range(1, len(stored) + 1))
        assert tenant.stream_version(stream_id) == len(stored)


@pytest.mark.slow
def test_all_stream_keeps_each_streams_order_when_writers_create_it_concurrently(
    store: EventStore, tenant: TenantEvents
) -> None:
    """Eight writers append (StreamState.ANY) to a stream that does not exist yet, many times over.

    Each stream's events must come out of the all-stream in sequence order, as they do from the stream.
    Guards the per-stream advisory lock: without it a writer that loses the race to insert the new
    `streams` row has already taken its transaction id (at its speculative insert) before it waits, the
    losers then take the row in any order, and a later sequence number can carry an older xid, which the
    all-stream, ordered by (transaction_id, global_position), delivers first.
    """
    writers, rounds_per_check, checks = 8, 50, 8
    checkpoint = START
    for check in range(checks):
        stream_ids = [f"instance:{uuid4()}" for _ in range(rounds_per_check)]
        for stream_id in stream_ids:

            def write(_index: int, stream_id: str = stream_id) -> None:
                tenant.append(stream_id, [event({"stream": stream_id})], StreamState.ANY)

            run_threads(writers, write)
        settle(store, tenant)  # the host's timers share the server: their transactions hold the horizon a moment
        page = tenant.read_all(checkpoint, limit=writers * rounds_per_check + 1)
        assert len(page.events) == writers * rounds_per_check and not page.more
        checkpoint = page.next_checkpoint
        out_of_order: list[str] = []
        last_sequence: dict[str, RecordedEvent] = {}
        for recorded in page.events:
            previous = last_sequence.get(recorded.stream_id)
            if previous is not None and recorded.sequence_number < previous.sequence_number:
                out_of_order.append(
                    f"{recorded.stream_id}: sequence {recorded.sequence_number} (xid {recorded.transaction_id}, "
                    f"position {recorded.global_position}) after sequence {previous.sequence_number} "
                    f"(xid {previous.transaction_id}, position {previous.global_position})"
                )
            last_sequence[recorded.stream_id] = recorded
        assert not out_of_order, f"after {(check + 1) * rounds_per_check} rounds:\n" + "\n".join(out_of_order)


def test_pages_and_more_flag(store: EventStore, tenant: TenantEvents) -> None:
    appended: list[UUID] = []
    for n in range(5):
        batch = [event({"batch": n, "item": i}) for i in range(5)]
        tenant.append(f"instance:page-{n % 2}", batch)
        appended.extend(e.event_id for e in batch)
    assert len(appended) == 25
    settle(store, tenant)

    pages = []
    checkpoint = START
    for _ in range(3):
        page = tenant.read_all(checkpoint, limit=10)
        pages.append(page)
        checkpoint = page.next_checkpoint
    assert [len(p.events) for p in pages] == [10, 10, 5]
    assert [p.more for p in pages] == [True, True, False]
    assert [e.event_id for p in pages for e in p.events] == appended
    for page in pages:
        last = page.events[-1]
        assert page.next_checkpoint == Checkpoint(last.transaction_id, last.global_position)

    tail = tenant.read_all(checkpoint, limit=10)
    assert tail.events == [] and not tail.more and tail.next_checkpoint == checkpoint
    assert [e.event_id for e in read_everything(tenant, limit=3)] == appended
    assert [e.event_id for e in read_everything(tenant, limit=1)] == appended


def test_more_is_false_when_the_last_page_is_exactly_full(store: EventStore, tenant: TenantEvents) -> None:
    ids: list[UUID] = []
    for n in range(2):
        batch = [event({"batch": n, "item": i}) for i in range(10)]
        tenant.append("audit", batch)
        ids.extend(e.event_id for e in batch)
    settle(store, tenant)
    first = tenant.read_all(limit=10)
    second = tenant.read_all(first.next_checkpoint, limit=10)
    assert (len(first.events), first.more) == (10, True)
    assert (len(second.events), second.more) == (10, False)
    assert [e.event_id for e in [*first.events, *second.events]] == ids
    everything = tenant.read_all(limit=20)
    assert len(everything.events) == 20 and not everything.more
    assert tenant.read_all(limit=19).more
