"""One tenant's change feed in the store: its sinks' checkpoints and health, the events waiting, dead
letters, and the publisher's session.

`TenantFeed` answers what anyone may ask (health, counts) on a pooled connection per call. Publishing
goes through a `FeedSession`: one publisher's hold on one sink, the advisory lock's connection, used for
everything the drain does (reads, checkpoints, dead letters), so that a drain needs one pooled
connection, not two. That connection is in autocommit and idle between statements: no transaction is
open while a batch is on the wire. The lock is session-level (see `feed_lock`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from eventstore.models import Checkpoint
from eventstore.store.connection import StorePool, run, translated_errors
from eventstore.store.feed_checkpoints import (
    DeadLetter,
    FeedDeadLetterRow,
    SinkState,
    add_dead_letters,
    count_dead_letters,
    list_dead_letters,
    load_checkpoint,
    mark_redriven,
    record_failure,
    save_checkpoint,
    sink_states,
)
from eventstore.store.feed_lock import try_lock_feed, unlock_feed
from eventstore.store.read_feed import FeedEntry, FeedPage, PendingStats, any_after, pending_after, read_dead_letters
from eventstore.store.read_feed import read_feed_after as _read_feed_after
from eventstore.tenancy import TenantPlacement


class FeedSession:
    """Publish one tenant's events to one sink, holding its lock. Obtain one with `TenantFeed.session`."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str, sink: str) -> None:
        self._conn, self._schema, self.sink = conn, schema, sink

    def checkpoint(self) -> Checkpoint:
        """Where the sink has got to on the all-stream (START when it has published nothing)."""
        with translated_errors():
            return load_checkpoint(self._conn, self._schema, self.sink)

    def failing_since(self) -> datetime | None:
        with translated_errors():
            state = sink_states(self._conn, self._schema).get(self.sink)
        return state.failing_since if state else None

    def read(self, after: Checkpoint, limit: int) -> FeedPage:
        """Up to `limit` events after `after` in all-stream order, ids and positions only; the same page
        shape as `TenantEvents.read_all`."""
        with translated_errors():
            return _read_feed_after(self._conn, self._schema, after, limit)

    def waiting(self, after: Checkpoint) -> bool:
        """Whether events lie after `after` that `read` cannot return yet (committed since the last read,
        or behind an open transaction)."""
        with translated_errors():
            return any_after(self._conn, self._schema, after)

    def complete_batch(self, checkpoint: Checkpoint, letters: Sequence[DeadLetter] = ()) -> Checkpoint:
        """A batch's refused events into the dead letters and the checkpoint past the batch (forward only),
        in one transaction (a crash leaves both or neither). Returns the stored checkpoint."""
        with translated_errors(), self._conn.transaction():
            add_dead_letters(self._conn, self._schema, self.sink, letters)
            return save_checkpoint(self._conn, self._schema, self.sink, checkpoint)

    def record_failure(self, error: str) -> None:
        """Note that the sink is failing (the checkpoint stays where it is); cleared by the next batch."""
        with translated_errors():
            record_failure(self._conn, self._schema, self.sink, error)

    def dead_letters(self, after: Checkpoint, limit: int) -> list[FeedEntry]:
        """Events the sink refused that no redrive has delivered since, after `after` in all-stream order."""
        with translated_errors():
            return read_dead_letters(self._conn, self._schema, self.sink, after, limit)

    def complete_redrive(self, delivered: Sequence[UUID], refused: Sequence[DeadLetter], by: str | None = None) -> None:
        """Stamp what the sink took on a redrive (and who asked for it), renew the reason of what it refused
        again."""
        with translated_errors(), self._conn.transaction():
            mark_redriven(self._conn, self._schema, self.sink, delivered, by)
            add_dead_letters(self._conn, self._schema, self.sink, refused)


class TenantFeed:
    """One tenant's change feed. Obtain one with `EventStore.feed(tenant_id)`."""

    def __init__(self, placement: TenantPlacement, pool: StorePool, sessions: StorePool | None = None) -> None:
        self.placement = placement
        self._schema = placement.schema_name
        self._pool = pool
        # Publishers hold a session lock: a pool straight to the server when `pool` is a transaction pooler.
        self._sessions = sessions or pool

    @property
    def tenant_id(self) -> str:
        return self.placement.tenant_id

    @contextmanager
    def session(self, sink: str) -> Iterator[FeedSession | None]:
        """Hold the publisher lock of this tenant's `sink` for the block, if no other publisher has it:
        yields the session to publish through, or None. One pooled connection, idle between statements."""
        with translated_errors(), self._sessions.connection() as conn:
            if not try_lock_feed(conn, self._schema, sink):
                yield None
                return
            try:
                yield FeedSession(conn, self._schema, sink)
            finally:
                released = False
                # A failed unlock must not hide the drain's own exception; the connection is closed below.
                with suppress(Exception):
                    released = unlock_feed(conn, self._schema, sink)
                if not released:
                    # Never hand a connection that may still hold the lock back to the pool: closed, it is
                    # discarded, and the server releases the lock with the session.
                    conn.close()

    def sink_states(self) -> dict[str, SinkState]:
        """Every sink's checkpoint and delivery health, by sink name."""
        return run(self._pool, lambda conn: sink_states(conn, self._schema))

    def pending(self, after: Checkpoint) -> PendingStats:
        """Events committed after `after`, and the oldest one's time."""
        return run(self._pool, lambda conn: pending_after(conn, self._schema, after))

    def list_dead_letters(
        self, sink: str | None = None, *, waiting: bool = True, limit: int = 100
    ) -> list[FeedDeadLetterRow]:
        """The sinks' dead letters, the most recent first (`waiting`: only those not delivered since)."""
        return run(self._pool, lambda conn: list_dead_letters(conn, self._schema, sink, waiting=waiting, limit=limit))

    def dead_letter_count(self, sink: str | None = None) -> int:
        """Dead letters not redriven since, of `sink` or of every sink."""
        return run(self._pool, lambda conn: count_dead_letters(conn, self._schema, sink))
