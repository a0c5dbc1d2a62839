"""Read one stream in order, forwards or backwards, from a sequence number, with a limit."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import psycopg
from psycopg import sql

from eventstore.errors import InvalidInput
from eventstore.models import AllStreamPage, Checkpoint, RecordedEvent
from eventstore.store.streams import validate_stream_id

# The most events one read returns; larger reads page.
MAX_LIMIT = 100_000
_MAX_SEQUENCE = 2**62

# The columns of `RecordedEvent`, in its field order. The payload comes back as the stored bytes:
# nothing is decoded, which keeps reads close to a raw SELECT.
EVENT_COLUMNS = (
    "global_position, transaction_id::text::bigint AS transaction_number, stream_id, sequence_number, event_id, "
    "event_type, payload, "
    "payload_sha256, payload_size, blob_ref, content_type, workflow_id, workflow_instance_id, user_id, "
    "correlation_id, causation_id, source_system, recorded_at"
)


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")


def page_of(rows: list[Any], limit: int, after: Checkpoint) -> AllStreamPage:
    """A page of the all-stream order from up to `limit + 1` rows: the extra row only says more wait."""
    events = [RecordedEvent._make(row) for row in rows[:limit]]
    last = events[-1] if events else None
    next_checkpoint = Checkpoint(last.transaction_id, last.global_position) if last else after
    return AllStreamPage(events=events, next_checkpoint=next_checkpoint, more=len(rows) > limit)


@lru_cache(maxsize=1024)
def _statement(schema: str, backwards: bool) -> bytes:
    template = (
        "SELECT "
        + EVENT_COLUMNS
        + " FROM {events} WHERE stream_id = %s AND sequence_number "
        + ("<= %s ORDER BY sequence_number DESC" if backwards else ">= %s ORDER BY sequence_number")
        + " LIMIT %s"
    )
    return sql.SQL(template).format(events=sql.Identifier(schema, "events")).as_bytes(None)


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
