"""Read one event by its id."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from eventstore.models import RecordedEvent
from eventstore.store.schema import EVENT_IDS, EVENTS, RECORDED_EVENT_COLUMNS, table


@lru_cache(maxsize=1024)
def _statement(schema: str) -> bytes:
    template = (
        "SELECT " + RECORDED_EVENT_COLUMNS + " FROM {events} AS e WHERE (e.stream_id, e.sequence_number) ="
        " (SELECT stream_id, sequence_number FROM {event_ids} WHERE event_id = %s)"
    )
    return sql.SQL(template).format(event_ids=table(schema, EVENT_IDS), events=table(schema, EVENTS)).as_bytes(None)


def read_event(conn: psycopg.Connection[Any], schema: str, event_id: UUID) -> RecordedEvent | None:
    row = conn.cursor(binary=True).execute(_statement(schema), (event_id,)).fetchone()
    return RecordedEvent._make(row) if row else None
