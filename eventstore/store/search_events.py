"""Search a tenant's events by time range, type and workflow, page by page in commit-safe order.

Pages follow the all-stream's order, (transaction_id, global_position), and stop at the oldest open
transaction, so a continuation never skips an event that commits late and never repeats one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from eventstore.models import AllStreamPage, Checkpoint, RecordedEvent
from eventstore.store.pages import check_limit, page_of
from eventstore.store.schema import EVENTS, RECORDED_EVENT_COLUMNS, table


def search_events(
    conn: psycopg.Connection[Any],
    schema: str,
    after: Checkpoint,
    limit: int,
    *,
    recorded_from: datetime | None = None,
    recorded_to: datetime | None = None,
    event_types: Sequence[str] = (),
    workflow_id: str | None = None,
    stream_id: str | None = None,
) -> AllStreamPage:
    """Events matching every given filter (`recorded_from` inclusive, `recorded_to` exclusive; a range whose
    start is not before its end matches nothing, like any other filter no event meets)."""
    check_limit(limit)
    filters = [
        sql.SQL("(e.transaction_id, e.global_position) > (%s::text::xid8, %s)"),
        sql.SQL("e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())"),
    ]
    params: list[Any] = [str(after.transaction_id), after.global_position]
    # Each filter is a fixed fragment; only values travel as parameters.
    if recorded_from is not None:
        filters.append(sql.SQL("e.recorded_at >= %s"))
        params.append(recorded_from)
    if recorded_to is not None:
        filters.append(sql.SQL("e.recorded_at < %s"))
        params.append(recorded_to)
    if event_types:
        filters.append(sql.SQL("e.event_type = ANY(%s)"))
        params.append(list(event_types))
    if workflow_id is not None:
        filters.append(sql.SQL("e.workflow_id = %s"))
        params.append(workflow_id)
    if stream_id is not None:
        filters.append(sql.SQL("e.stream_id = %s"))
        params.append(stream_id)
    query = sql.SQL(
        "SELECT " + RECORDED_EVENT_COLUMNS + " FROM {events} AS e WHERE {filters}"
        " ORDER BY e.transaction_id, e.global_position LIMIT %s"
    ).format(events=table(schema, EVENTS), filters=sql.SQL(" AND ").join(filters))
    rows = conn.cursor(binary=True).execute(query, [*params, limit + 1]).fetchall()
    return page_of(rows, limit, after, RecordedEvent._make)
