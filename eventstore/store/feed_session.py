"""One publisher's hold on one tenant's sink: the advisory lock's connection, used for everything the
drain does (reads, checkpoints, dead letters), so that a drain needs one pooled connection, not two.

The connection is in autocommit and idle between statements: no transaction is open while a batch is
on the wire. The lock is session-level (see `feed_lock`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from eventstore.models import Checkpoint
from eventstore.store.connection import translated_errors
from eventstore.store.feed_checkpoints import (
    DeadLetter,
    add_dead_letters,
    load_checkpoint,
    mark_redriven,
    record_failure,
    save_checkpoint,
    sink_states,
)
from eventstore.store.read_feed import FeedEntry, any_after, read_dead_letters, read_feed_after


class FeedSession:
    def __init__(self, conn: psycopg.Connection[Any], schema: str, sink: str) -> None:
        self._conn, self._schema, self.sink = conn, schema, sink

    def checkpoint(self) -> Checkpoint:
        with translated_errors():
            return load_checkpoint(self._conn, self._schema, self.sink)

    def failing_since(self) -> datetime | None:
        with translated_errors():
            state = sink_states(self._conn, self._schema).get(self.sink)
        return state.failing_since if state else None

    def read(self, after: Checkpoint, limit: int) -> list[FeedEntry]:
        with translated_errors():
            return read_feed_after(self._conn, self._schema, after, limit)

    def waiting(self, after: Checkpoint) -> bool:
        """Whether events lie after `after` (committed since the last read, or behind an open transaction)."""
        with translated_errors():
            return any_after(self._conn, self._schema, after)

    def complete_batch(self, checkpoint: Checkpoint, letters: Sequence[DeadLetter]) -> Checkpoint:
        """A batch's refused events into the dead letters and the checkpoint past the batch, in one
        transaction (a crash leaves both or neither). Returns the stored checkpoint."""
        with translated_errors(), self._conn.transaction():
            add_dead_letters(self._conn, self._schema, self.sink, letters)
            return save_checkpoint(self._conn, self._schema, self.sink, checkpoint)

    def record_failure(self, error: str) -> None:
        with translated_errors():
            record_failure(self._conn, self._schema, self.sink, error)

    def dead_letters(self, after: Checkpoint, limit: int) -> list[FeedEntry]:
        with translated_errors():
            return read_dead_letters(self._conn, self._schema, self.sink, after, limit)

    def complete_redrive(self, delivered: Sequence[UUID], refused: Sequence[DeadLetter]) -> None:
        """Stamp what the sink took on a redrive, renew the reason of what it refused again."""
        with translated_errors(), self._conn.transaction():
            mark_redriven(self._conn, self._schema, self.sink, delivered)
            add_dead_letters(self._conn, self._schema, self.sink, refused)
