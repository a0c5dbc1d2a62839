"""Read one stream in order, forwards or backwards, from a sequence number, with a limit."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import psycopg
from psycopg import sql

from eventstore.errors import InvalidInput
from eventstore.models import RecordedEvent
from eventstore.store.pages import check_limit
from eventstore.store.schema import EVENTS, RECORDED_EVENT_COLUMNS, table
from eventstore.store.streams import validate_stream_id

_MAX_SEQUENCE = 2**62


@lru_cache(maxsize=1024)
def _statement(schema: str, backwards: bool) -> bytes:
    template = (
        "SELECT "
        + RECORDED_EVENT_COLUMNS
        + " FROM {events} AS e WHERE e.stream_id = %s AND e.sequence_number "
        + ("<= %s ORDER BY e.sequence_number DESC" if backwards else ">= %s ORDER BY e.sequence_number")
        + " LIMIT %s"
    )
    return sql.SQL(template).format(events=table(schema, EVENTS)).as_bytes(None)


def read_stream(
    conn: psycopg.Connection[Any],
    schema: str,
    stream_id: str,
    from_sequence: int | None = None,
    *,
    backwards: bool = False,
    limit: int = 1000,
) -> list[RecordedEvent]:
    """Events of `stream_id` from `from_sequence` (inclusive; default: the start, or the end backwards)."""
    validate_stream_id(stream_id)
    check_limit(limit)
    if from_sequence is None:
        from_sequence = _MAX_SEQUENCE if backwards else 1
    elif not 0 <= from_sequence <= _MAX_SEQUENCE:
        raise InvalidInput(f"from_sequence must be between 0 and {_MAX_SEQUENCE}", field="from_sequence")
    cursor = conn.cursor(binary=True)
    rows = cursor.execute(_statement(schema, backwards), (stream_id, from_sequence, limit)).fetchall()
    return [RecordedEvent._make(row) for row in rows]
