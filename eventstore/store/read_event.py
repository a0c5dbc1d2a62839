"""Read one event by its id."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from eventstore.models import ErasureMark, RecordedEvent
from eventstore.store.schema import EVENT_IDS, EVENTS, RECORDED_EVENT_COLUMNS, REDACTION_COLUMNS, table


@lru_cache(maxsize=1024)
def _statement(schema: str) -> bytes:
    template = (
        "SELECT " + RECORDED_EVENT_COLUMNS + " FROM {events} AS e WHERE (e.stream_id, e.sequence_number) ="
        " (SELECT stream_id, sequence_number FROM {event_ids} WHERE event_id = %s)"
    )
    return sql.SQL(template).format(event_ids=table(schema, EVENT_IDS), events=table(schema, EVENTS)).as_bytes(None)


def marks_of(conn: psycopg.Connection[Any], schema: str, events: Sequence[RecordedEvent]) -> dict[UUID, ErasureMark]:
    """Of `events`, those an erasure redacted or removed, with its mark."""
    if not events:
        return {}
    statement = sql.SQL(
        "SELECT e.event_id, " + REDACTION_COLUMNS + " FROM {events} AS e"
        " JOIN unnest(%s::text[], %s::bigint[]) AS k(stream_id, sequence_number)"
        " USING (stream_id, sequence_number) WHERE e.erasure_id IS NOT NULL"
    ).format(events=table(schema, EVENTS))
    params = ([e.stream_id for e in events], [e.sequence_number for e in events])
    rows = conn.cursor(binary=True).execute(statement, params).fetchall()
    return {r[0]: ErasureMark(r[1], bytes(r[2]) if r[2] is not None else None) for r in rows}


def read_event(conn: psycopg.Connection[Any], schema: str, event_id: UUID) -> RecordedEvent | None:
    row = conn.cursor(binary=True).execute(_statement(schema), (event_id,)).fetchone()
    return RecordedEvent._make(row) if row else None
