"""Read a tenant's all-stream after a checkpoint, in commit-safe order, never skipping an event.

A global sequence alone skips: transactions commit out of sequence order, so a reader can pass a
position whose row commits later. Rows are read in (transaction_id, global_position) order and only
from transactions older than the oldest one still running (`pg_snapshot_xmin`), which are all finished:
nothing can appear behind the checkpoint afterwards. A long-open transaction delays the feed; it
never makes it skip.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import psycopg
from psycopg import sql

from eventstore.models import AllStreamPage, Checkpoint, RecordedEvent
from eventstore.store.pages import check_limit, page_of
from eventstore.store.schema import EVENTS, RECORDED_EVENT_COLUMNS, table


@lru_cache(maxsize=1024)
def all_stream_statement(schema: str, columns: str) -> bytes:
    """`columns` (of `events AS e`) of the events after a (transaction id, position) pair, in all-stream
    order, below the horizon. Parameters: transaction id (text), global position, limit."""
    template = (
        "SELECT " + columns + " FROM {events} AS e"
        " WHERE (e.transaction_id, e.global_position) > (%s::text::xid8, %s)"
        " AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
        # Qualified, so the sort is on the xid8 column and its index, not on the bigint output column.
        " ORDER BY e.transaction_id, e.global_position LIMIT %s"
    )
    return sql.SQL(template).format(events=table(schema, EVENTS)).as_bytes(None)


def read_all_after(
    conn: psycopg.Connection[Any], schema: str, checkpoint: Checkpoint, limit: int = 1000
) -> AllStreamPage:
    check_limit(limit)
    cursor = conn.cursor(binary=True)
    rows = cursor.execute(
        all_stream_statement(schema, RECORDED_EVENT_COLUMNS),
        (str(checkpoint.transaction_id), checkpoint.global_position, limit + 1),
    ).fetchall()
    return page_of(rows, limit, checkpoint, RecordedEvent._make)
