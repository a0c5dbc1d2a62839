"""Per-sink checkpoints on the all-stream and dead letters: what the change feed's publisher keeps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import psycopg
from psycopg import sql

from eventstore.models import START, Checkpoint, RecordedEvent
from eventstore.store.read_feed import FeedEntry
from eventstore.store.schema import EVENT_IDS, EVENTS, FEED_CHECKPOINTS, FEED_DEAD_LETTERS, table


class DeadLetter(NamedTuple):
    event: RecordedEvent | FeedEntry
    status: int | None
    reason: str


class SinkState(NamedTuple):
    """A sink's checkpoint and its delivery health."""

    sink: str
    checkpoint: Checkpoint
    updated_at: datetime | None
    last_success_at: datetime | None
    failing_since: datetime | None
    last_error: str | None
    last_error_at: datetime | None


def load_checkpoint(conn: psycopg.Connection[Any], schema: str, sink: str) -> Checkpoint:
    row = conn.execute(
        sql.SQL("SELECT transaction_id::text::bigint, global_position FROM {} WHERE sink = %s").format(
            table(schema, FEED_CHECKPOINTS)
        ),
        (sink,),
    ).fetchone()
    return Checkpoint(int(row[0]), int(row[1])) if row else START


def save_checkpoint(conn: psycopg.Connection[Any], schema: str, sink: str, checkpoint: Checkpoint) -> Checkpoint:
    """Move the sink's checkpoint forward to `checkpoint` (never back); returns where it now is."""
    row = conn.execute(
        sql.SQL(
            "INSERT INTO {table} AS c (sink, transaction_id, global_position, last_success_at)"
            " VALUES (%s, %s::text::xid8, %s, now())"
            " ON CONFLICT (sink) DO UPDATE SET transaction_id = EXCLUDED.transaction_id,"
            " global_position = EXCLUDED.global_position, updated_at = now(), last_success_at = now(),"
            " failing_since = NULL, last_error = NULL"
            " WHERE (c.transaction_id, c.global_position) < (EXCLUDED.transaction_id, EXCLUDED.global_position)"
            " RETURNING transaction_id::text::bigint, global_position"
        ).format(table=table(schema, FEED_CHECKPOINTS)),
        (sink, str(checkpoint.transaction_id), checkpoint.global_position),
    ).fetchone()
    # No row: the stored checkpoint was already at or past this one (a publisher that lost a race).
    return Checkpoint(int(row[0]), int(row[1])) if row else load_checkpoint(conn, schema, sink)


def add_dead_letters(conn: psycopg.Connection[Any], schema: str, sink: str, letters: Sequence[DeadLetter]) -> None:
    """Record refused events; a republished refusal (after a crash) updates the reason, never duplicates."""
    if not letters:
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            sql.SQL(
                "INSERT INTO {} (sink, event_id, global_position, status, reason) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (sink, event_id) DO UPDATE SET status = EXCLUDED.status, reason = EXCLUDED.reason,"
                " dead_at = now(), redriven_at = NULL, redriven_by = NULL"
            ).format(table(schema, FEED_DEAD_LETTERS)),
            [(sink, d.event.event_id, d.event.global_position, d.status, d.reason) for d in letters],
        )


def count_dead_letters(conn: psycopg.Connection[Any], schema: str, sink: str | None = None) -> int:
    """Dead letters not (successfully) redriven since."""
    query = sql.SQL("SELECT count(*) FROM {} WHERE redriven_at IS NULL").format(table(schema, FEED_DEAD_LETTERS))
    if sink is None:
        row = conn.execute(query).fetchone()
    else:
        row = conn.execute(query + sql.SQL(" AND sink = %s"), (sink,)).fetchone()
    return int(row[0]) if row else 0


def mark_redriven(
    conn: psycopg.Connection[Any], schema: str, sink: str, event_ids: Sequence[UUID], by: str | None = None
) -> None:
    if event_ids:
        conn.execute(
            sql.SQL(
                "UPDATE {} SET redriven_at = now(), redriven_by = %s WHERE sink = %s AND event_id = ANY(%s)"
            ).format(table(schema, FEED_DEAD_LETTERS)),
            (by, sink, list(event_ids)),
        )


@dataclass(frozen=True)
class FeedDeadLetterRow:
    sink: str
    event_id: UUID
    global_position: int
    event_type: str | None
    stream_id: str | None
    status: int | None
    reason: str
    dead_at: datetime
    redriven_at: datetime | None
    redriven_by: str | None


def list_dead_letters(
    conn: psycopg.Connection[Any], schema: str, sink: str | None, *, waiting: bool, limit: int
) -> list[FeedDeadLetterRow]:
    """The sinks' dead letters, the most recent first: only those not delivered since with `waiting`."""
    conditions = [sql.SQL("TRUE")]
    params: list[Any] = []
    if sink is not None:
        conditions.append(sql.SQL("d.sink = %s"))
        params.append(sink)
    if waiting:
        conditions.append(sql.SQL("d.redriven_at IS NULL"))
    statement = sql.SQL(
        "SELECT d.sink, d.event_id, d.global_position, i.event_type, i.stream_id, d.status, d.reason, d.dead_at,"
        " d.redriven_at, d.redriven_by FROM {letters} AS d"
        " LEFT JOIN LATERAL (SELECT e.event_type, e.stream_id FROM {ids} AS x JOIN {events} AS e"
        "  USING (stream_id, sequence_number) WHERE x.event_id = d.event_id LIMIT 1) AS i ON TRUE"
        " WHERE {conditions} ORDER BY d.dead_at DESC, d.event_id LIMIT %s"
    ).format(
        letters=table(schema, FEED_DEAD_LETTERS), ids=table(schema, EVENT_IDS), events=table(schema, EVENTS),
        conditions=sql.SQL(" AND ").join(conditions),
    )  # fmt: skip
    rows = conn.execute(statement, (*params, limit)).fetchall()
    return [FeedDeadLetterRow(*r) for r in rows]


def record_failure(conn: psycopg.Connection[Any], schema: str, sink: str, error: str) -> None:
    """Note that `sink` is failing (the checkpoint stays where it is); cleared by the next save."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {table} AS c (sink, transaction_id, global_position, failing_since, last_error, last_error_at)"
            " VALUES (%s, '0'::xid8, 0, now(), %s, now())"
            " ON CONFLICT (sink) DO UPDATE SET failing_since = coalesce(c.failing_since, now()),"
            " last_error = EXCLUDED.last_error, last_error_at = now()"
        ).format(table=table(schema, FEED_CHECKPOINTS)),
        (sink, error[:2000]),
    )


def sink_states(conn: psycopg.Connection[Any], schema: str) -> dict[str, SinkState]:
    rows = conn.execute(
        sql.SQL(
            "SELECT sink, transaction_id::text::bigint, global_position, updated_at, last_success_at,"
            " failing_since, last_error, last_error_at FROM {}"
        ).format(table(schema, FEED_CHECKPOINTS))
    ).fetchall()
    return {
        row[0]: SinkState(row[0], Checkpoint(int(row[1]), int(row[2])), row[3], row[4], row[5], row[6], row[7])
        for row in rows
    }
