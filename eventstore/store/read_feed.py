"""What the change feed reads: the all-stream after a sink's checkpoint, ids and positions only.

Same order and the same horizon as `read_all` (see there: rows only from transactions older than the
oldest one still running, so nothing can appear behind a checkpoint), but without the payload columns:
the feed never carries payloads, and a backlog drain should not read them.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple
from uuid import UUID

import psycopg
from psycopg import sql

from eventstore.models import Checkpoint, Page
from eventstore.store.pages import check_limit, page_of
from eventstore.store.read_all import all_stream_statement
from eventstore.store.schema import EVENT_IDS, EVENTS, FEED_DEAD_LETTERS, FEED_ENTRY_COLUMNS, table


class FeedEntry(NamedTuple):
    """What the feed says about one event."""

    global_position: int
    transaction_id: int
    stream_id: str
    sequence_number: int
    event_id: UUID
    event_type: str
    workflow_id: str | None
    workflow_instance_id: str | None
    recorded_at: datetime

    @property
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.transaction_id, self.global_position)


class PendingStats(NamedTuple):
    """Events committed after a checkpoint (visible now, whether or not the feed may read them yet)."""

    events: int
    oldest_recorded_at: datetime | None


class WritingTransaction(NamedTuple):
    """The oldest open transaction that holds a transaction id, anywhere on the server: the feed's horizon."""

    pid: int
    database: str | None
    started_at: datetime
    age_seconds: float
    state: str | None


FeedPage = Page[FeedEntry]


def read_feed_after(conn: psycopg.Connection[Any], schema: str, checkpoint: Checkpoint, limit: int) -> FeedPage:
    check_limit(limit)
    cursor = conn.cursor(binary=True)
    rows = cursor.execute(
        all_stream_statement(schema, FEED_ENTRY_COLUMNS),
        (str(checkpoint.transaction_id), checkpoint.global_position, limit + 1),
    ).fetchall()
    return page_of(rows, limit, checkpoint, FeedEntry._make)


@lru_cache(maxsize=1024)
def _dead_letters_statement(schema: str) -> bytes:
    template = (
        "SELECT " + FEED_ENTRY_COLUMNS + " FROM {letters} AS d"
        " JOIN {ids} AS i ON i.event_id = d.event_id"
        " JOIN {events} AS e ON e.stream_id = i.stream_id AND e.sequence_number = i.sequence_number"
        " WHERE d.sink = %s AND d.redriven_at IS NULL AND (e.transaction_id, e.global_position) > (%s::text::xid8, %s)"
        " ORDER BY e.transaction_id, e.global_position LIMIT %s"
    )
    return (
        sql.SQL(template)
        .format(
            letters=table(schema, FEED_DEAD_LETTERS),
            ids=table(schema, EVENT_IDS),
            events=table(schema, EVENTS),
        )
        .as_bytes(None)
    )


def read_dead_letters(
    conn: psycopg.Connection[Any], schema: str, sink: str, after: Checkpoint, limit: int
) -> list[FeedEntry]:
    """The events `sink` refused and no redrive has delivered since, after `after` in all-stream order."""
    check_limit(limit)
    params = (sink, str(after.transaction_id), after.global_position, limit)
    rows = conn.cursor(binary=True).execute(_dead_letters_statement(schema), params).fetchall()
    return [FeedEntry._make(row) for row in rows]


def any_after(conn: psycopg.Connection[Any], schema: str, checkpoint: Checkpoint) -> bool:
    """Whether any committed event lies after `checkpoint`, readable yet or not (one index probe)."""
    row = conn.execute(
        sql.SQL(
            "SELECT EXISTS (SELECT 1 FROM {events} WHERE (transaction_id, global_position) > (%s::text::xid8, %s))"
        ).format(events=table(schema, EVENTS)),
        (str(checkpoint.transaction_id), checkpoint.global_position),
    ).fetchone()
    return bool(row and row[0])


def pending_after(conn: psycopg.Connection[Any], schema: str, checkpoint: Checkpoint) -> PendingStats:
    row = conn.execute(
        sql.SQL(
            "SELECT count(*), min(recorded_at) FROM {events}"
            " WHERE (transaction_id, global_position) > (%s::text::xid8, %s)"
        ).format(events=table(schema, EVENTS)),
        (str(checkpoint.transaction_id), checkpoint.global_position),
    ).fetchone()
    assert row is not None
    return PendingStats(int(row[0]), row[1])


def oldest_writing_transaction(conn: psycopg.Connection[Any]) -> WritingTransaction | None:
    """Needs a role that sees other sessions' activity (superuser, pg_read_all_stats or the server admin);
    other roles see only their own sessions here."""
    row = conn.execute(
        "SELECT pid, datname, xact_start, extract(epoch FROM clock_timestamp() - xact_start)::float8, state"
        " FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND xact_start IS NOT NULL"
        " AND pid <> pg_backend_pid() ORDER BY xact_start LIMIT 1"
    ).fetchone()
    return WritingTransaction(int(row[0]), row[1], row[2], float(row[3]), row[4]) if row else None
