"""Read one event by its id."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from eventstore.models import RecordedEvent
from eventstore.store.read_stream import EVENT_COLUMNS


@lru_cache(maxsize=1024)
def _statement(schema: str) -> bytes:
    template = (
        "SELECT " + EVENT_COLUMNS + " FROM {events}"
        " WHERE (stream_id, sequence_number) = (SELECT stream_id, sequence_number FROM {event_ids} WHERE event_id = %s)"
    )
    return (
        sql.SQL(template)
        .format(event_ids=sql.Identifier(schema, "event_ids"), events=sql.Identifier(schema, "events"))
        .as_bytes(None)
    )


def read_event(conn: psycopg.Connection[Any], schema: str, event_id: UUID) -> RecordedEvent | None:
    row = conn.cursor(binary=True).execute(_statement(schema), (event_id,)).fetchone()
    return RecordedEvent._make(row) if row else None
