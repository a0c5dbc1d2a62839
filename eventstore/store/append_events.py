"""Append a batch of events to one stream, atomically.

Every path compare-and-sets the stream's `streams` row (which serialises writers of one stream and makes
sequence numbers gapless), then inserts each event into `event_ids` (uniqueness: idempotency) and
`events`. A conflict or a repeated event id aborts the whole append; only then does a second query decide
between "idempotent repeat" (return the first result) and a typed error.

Three paths, by batch size, with the same guarantees: one event is one small autocommit statement (one
round trip); a few events one statement over a VALUES list; many events a transaction that reserves
positions and then COPYs both tables in binary, because binding ~14 parameters per row costs more client
CPU than the whole COPY of the row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple
from uuid import UUID

import psycopg
from psycopg import pq, sql
from psycopg.adapt import Dumper
from psycopg.types.string import BytesBinaryDumper

from eventstore.errors import (
    ConcurrencyConflict,
    DuplicateEventId,
    DuplicateEventIdInBatch,
    InvalidInput,
    PayloadTooLarge,
)
from eventstore.models import AppendResult, ExpectedVersion, NewEvent, StreamState
from eventstore.payload_json import json_problem, jsonb_may_refuse, wants_json_copy
from eventstore.store.partitions import create_partition_for
from eventstore.store.schema import (
    EVENT_COLUMN_TYPES,
    EVENT_IDS,
    EVENT_METADATA_COLUMNS,
    EVENT_WRITE_COLUMNS,
    EVENTS,
    GLOBAL_POSITION_SEQUENCE,
    STREAMS,
    columns,
    table,
)
from eventstore.store.streams import validate_stream_id

# From this many events on, an append binds nothing per row and COPYs instead (see `_write_copy`); below
# it the COPY path's extra round trips cost more than binding (measured crossover: 25-50 events).
COPY_THRESHOLD = 32

# The VALUES list of a few-event append: the ordinal, then what each event brings (`_checked_values`).
_VALUE_COLUMNS = (
    "ord",
    "event_id",
    "event_type",
    "payload",
    "payload_sha256",
    "payload_size",
    "is_json",
    *EVENT_METADATA_COLUMNS,
)
_VALUE_TYPES = {**EVENT_COLUMN_TYPES, "ord": "", "is_json": "bool"}
_ROW = "(" + ", ".join("%s::" + _VALUE_TYPES[c] if _VALUE_TYPES[c] else "%s" for c in _VALUE_COLUMNS) + ")"
_INSERT_EVENTS = "INSERT INTO {events} (" + columns(EVENT_WRITE_COLUMNS) + ") "
_JSONB_COPY = "CASE WHEN is_json THEN convert_from(payload, 'UTF8')::jsonb END"


def _select(computed: dict[str, str], default: str | None) -> str:
    """The SELECT list feeding `_INSERT_EVENTS`: `computed` columns, the rest `default` (a placeholder)
    or, when None, the column of that name."""
    return ", ".join(computed.get(c, default or c) for c in EVENT_WRITE_COLUMNS)


# Writers of one stream first take a transaction-scoped advisory lock on it. Waiting for it assigns no
# transaction id, so ids are handed out in lock order and a stream's events never reach the all-stream
# (ordered by transaction id) out of sequence order. Without it, writers racing to create a stream are
# given their ids before they queue on the row and may then take it in any order.
_LOCK = "l (locked) AS (SELECT pg_advisory_xact_lock(hashtextextended({lock_prefix} || %s, 0))), "

# The compare-and-set for each kind of expectation. Each yields (stream_id, version) after this append.
# No row means the expectation failed (except NO_STREAM, which fails by unique violation).
_CAS = {
    "any": "INSERT INTO {streams} AS s (stream_id, version) SELECT %s, %s FROM l "
    "ON CONFLICT (stream_id) DO UPDATE SET version = s.version + EXCLUDED.version, updated_at = now() "
    "RETURNING stream_id, version",
    "no_stream": "INSERT INTO {streams} (stream_id, version) SELECT %s, %s FROM l RETURNING stream_id, version",
    "stream_exists": "UPDATE {streams} SET version = version + %s, updated_at = now() FROM l WHERE stream_id = %s "
    "RETURNING stream_id, version",
    "exact": "UPDATE {streams} SET version = version + %s, updated_at = now() FROM l "
    "WHERE stream_id = %s AND version = %s RETURNING stream_id, version",
}


def _names(schema: str) -> dict[str, sql.Composable]:
    return {
        "streams": table(schema, STREAMS),
        "event_ids": table(schema, EVENT_IDS),
        "events": table(schema, EVENTS),
        "sequence": sql.Literal(f"{schema}.{GLOBAL_POSITION_SEQUENCE}"),
        "lock_prefix": sql.Literal(f"{schema}/"),
    }


# What `_one_statement`'s `p` computes; every other column of the row is a placeholder.
_FROM_P = ("global_position", "stream_id", "sequence_number", "payload", "recorded_at")


@lru_cache(maxsize=1024)
def _one_statement(schema: str, mode: str) -> bytes:
    """One event: no VALUES list, nothing to materialise or sort."""
    template = (
        "WITH " + _LOCK + "s AS (" + _CAS[mode] + "), "
        "p AS (SELECT stream_id, version AS sequence_number, nextval({sequence}) AS global_position,"
        " coalesce(%s::timestamptz, now()) AS recorded_at, %s::bytea AS payload, %s::bool AS is_json FROM s), "
        "ids AS (INSERT INTO {event_ids} (event_id, stream_id, sequence_number)"
        " SELECT %s, stream_id, sequence_number FROM p) "
        + _INSERT_EVENTS
        + "SELECT "
        + _select({c: c for c in _FROM_P} | {"payload_json": _JSONB_COPY}, "%s")
        + " FROM p RETURNING sequence_number, global_position"
    )
    return sql.SQL(template).format(**_names(schema)).as_bytes(None)


@lru_cache(maxsize=4096)
def _values_statement(schema: str, mode: str, count: int) -> bytes:
    """A few events: the statement for one schema, expectation and batch size, rendered once."""
    template = (
        "WITH " + _LOCK + "s AS (" + _CAS[mode] + "), "
        "v (" + columns(_VALUE_COLUMNS) + ") AS (VALUES " + ", ".join([_ROW] * count) + "), "
        "n AS MATERIALIZED ("
        " SELECT v.*, s.stream_id, s.version - %s + v.ord AS sequence_number,"
        " nextval({sequence}) AS global_position, coalesce(%s::timestamptz, now()) AS recorded_at"
        " FROM s CROSS JOIN v ORDER BY v.ord), "
        "ids AS (INSERT INTO {event_ids} (event_id, stream_id, sequence_number)"
        " SELECT event_id, stream_id, sequence_number FROM n) "
        + _INSERT_EVENTS
        + "SELECT "
        + _select({"payload_json": _JSONB_COPY}, None)
        + " FROM n ORDER BY sequence_number "
        "RETURNING sequence_number, global_position"
    )
    return sql.SQL(template).format(**_names(schema)).as_bytes(None)


def _mode(expected: ExpectedVersion) -> str:
    if isinstance(expected, StreamState):
        return expected.value
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise InvalidInput(
            f"expected version must be a StreamState or an integer >= 0, got {expected!r}", field="expected_version"
        )
    return "no_stream" if expected == 0 else "exact"


def _cas_params(mode: str, stream_id: str, count: int, expected: ExpectedVersion) -> list[Any]:
    """Parameters of `_LOCK` and `_CAS[mode]`, in statement order."""
    if mode in ("any", "no_stream"):
        return [stream_id, stream_id, count]
    if mode == "stream_exists":
        return [stream_id, count, stream_id]
    return [stream_id, count, stream_id, expected]


class _Checked(NamedTuple):
    event: NewEvent
    digest: bytes
    is_json: bool
    blob_ref: str | None = None

    @property
    def row_payload(self) -> bytes | None:
        """What the row keeps: the payload, or nothing when it lives in Blob storage."""
        return None if self.blob_ref else self.event.payload

    @property
    def metadata(self) -> tuple[str | None, ...]:
        """The values of `EVENT_METADATA_COLUMNS`, in that order."""
        event = self.event
        return (
            event.content_type,
            event.workflow_id,
            event.workflow_instance_id,
            event.user_id,
            event.correlation_id,
            event.causation_id,
            event.source_system,
            self.blob_ref,
        )


def check_events(
    events: Sequence[NewEvent], inline_limit: int, blob_refs: Mapping[UUID, str] | None = None
) -> list[_Checked]:
    """Refuse what the database must never see; hash each payload and decide on its JSONB copy.

    Events named in `blob_refs` already have their payload in Blob storage: the row keeps the reference,
    the hash and the size, and no JSONB copy.
    """
    checked: list[_Checked] = []
    seen: dict[int, int] = {}  # UUID.__hash__ is Python code; its int hashes in C
    for index, event in enumerate(events):
        if not isinstance(event, NewEvent):
            raise InvalidInput(f"event {index} is a {type(event).__name__}, not a NewEvent", field=f"events[{index}]")
        first = seen.setdefault(event.event_id.int, index)
        if first != index:
            # A conflict between two events of the request, like one with a stored event: 409, not 400.
            raise DuplicateEventIdInBatch(event.event_id, first, index)
        size = len(event.payload)
        blob_ref = blob_refs.get(event.event_id) if blob_refs else None
        if blob_ref is not None:
            checked.append(_Checked(event, hashlib.sha256(event.payload).digest(), False, blob_ref))
            continue
        if size > inline_limit:
            raise PayloadTooLarge(
                size,
                inline_limit,
                field=f"events[{index}].payload",
                limit_name="EVENTSTORE_INLINE_PAYLOAD_LIMIT (no Blob storage is configured for larger payloads)",
            )
        checked.append(
            _Checked(event, hashlib.sha256(event.payload).digest(), wants_json_copy(event.payload, event.content_type))
        )
    return checked


def _write_one(
    conn: psycopg.Connection[Any],
    schema: str,
    mode: str,
    cas: list[Any],
    checked: _Checked,
    recorded_at: datetime | None,
) -> list[tuple[int, int]]:
    event = checked.event
    # In the order of `_one_statement`'s placeholders.
    params = [
        *cas,
        recorded_at,
        checked.row_payload,
        checked.is_json,
        event.event_id,
        event.event_id,
        event.event_type.value,
        checked.digest,
        len(event.payload),
        *checked.metadata,
    ]
    return conn.execute(_one_statement(schema, mode), params).fetchall()


def _write_values(
    conn: psycopg.Connection[Any],
    schema: str,
    mode: str,
    cas: list[Any],
    checked: list[_Checked],
    recorded_at: datetime | None,
) -> list[tuple[int, int]]:
    params = list(cas)
    for ordinal, c in enumerate(checked, 1):
        event = c.event
        params += (
            ordinal,
            event.event_id,
            event.event_type.value,
            c.row_payload,
            c.digest,
            len(event.payload),
            c.is_json,
            *c.metadata,
        )
    params += (len(checked), recorded_at)
    return conn.execute(_values_statement(schema, mode, len(checked)), params).fetchall()


class _RawJsonbDumper(Dumper):
    """Binary COPY of the JSONB copy straight from the payload bytes: version byte 1, then the JSON text."""

    format = pq.Format.BINARY
    oid = 3802  # jsonb

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + bytes(obj)


_COPY_EVENT_TYPES = [EVENT_COLUMN_TYPES[c] for c in EVENT_WRITE_COLUMNS]


@lru_cache(maxsize=1024)
def _copy_statements(schema: str, mode: str) -> tuple[bytes, bytes]:
    """For the COPY path: the compare-and-set that also claims the event ids and reserves positions, and
    the COPY of the events."""
    reserve = sql.SQL(
        "WITH " + _LOCK + "s AS (" + _CAS[mode] + "), "
        "ids AS (INSERT INTO {event_ids} (event_id, stream_id, sequence_number)"
        " SELECT i.event_id, s.stream_id, s.version - %s + i.ord"
        " FROM s CROSS JOIN unnest(%s::uuid[]) WITH ORDINALITY AS i(event_id, ord)) "
        "SELECT s.version, coalesce(%s::timestamptz, now()), nextval({sequence})"
        " FROM s CROSS JOIN generate_series(1, %s) AS g(i) ORDER BY g.i"
    ).format(**_names(schema))
    copy_events = sql.SQL("COPY {} (" + columns(EVENT_WRITE_COLUMNS) + ") FROM STDIN (FORMAT BINARY)").format(
        table(schema, EVENTS)
    )
    return reserve.as_bytes(None), copy_events.as_bytes(None)


def _write_copy(
    conn: psycopg.Connection[Any],
    schema: str,
    mode: str,
    stream_id: str,
    cas: list[Any],
    checked: list[_Checked],
    recorded_at: datetime | None,
) -> list[tuple[int, int]]:
    reserve, copy_events = _copy_statements(schema, mode)
    count = len(checked)
    with conn.transaction():
        ids = [c.event.event_id for c in checked]
        reserved = conn.execute(reserve, [*cas, count, ids, recorded_at, count]).fetchall()
        if not reserved:
            return []
        version, at = reserved[0][0], reserved[0][1]
        written = [(version - count + i, row[2]) for i, row in enumerate(reserved, 1)]
        cursor = conn.cursor()
        cursor.adapters.register_dumper(None, _RawJsonbDumper)
        # psycopg's DB-API module claims the bytea oid with a Python-level dumper; the plain one is in C.
        cursor.adapters.register_dumper(None, BytesBinaryDumper)
        with cursor.copy(copy_events) as copy:
            copy.set_types(_COPY_EVENT_TYPES)
            for (sequence, position), c in zip(written, checked, strict=True):
                event = c.event
                copy.write_row(
                    (
                        position,
                        stream_id,
                        sequence,
                        event.event_id,
                        event.event_type.value,
                        c.row_payload,
                        c.digest,
                        len(event.payload),
                        c.row_payload if c.is_json else None,
                        *c.metadata,
                        at,
                    )
                )
    return written


def append_events(
    conn: psycopg.Connection[Any],
    schema: str,
    stream_id: str,
    events: Sequence[NewEvent],
    expected: ExpectedVersion,
    *,
    inline_limit: int,
    max_batch: int,
    recorded_at: datetime | None = None,
    blob_refs: Mapping[UUID, str] | None = None,
) -> AppendResult:
    """Append `events` to `stream_id` in `schema` on an autocommit connection."""
    validate_stream_id(stream_id)
    if not events:
        raise InvalidInput("an append needs at least one event", field="events")
    if len(events) > max_batch:
        raise InvalidInput(f"{len(events)} events in one append; at most {max_batch}", field="events")
    mode = _mode(expected)
    checked = check_events(events, inline_limit, blob_refs)
    digests = [c.digest for c in checked]
    cas = _cas_params(mode, stream_id, len(events), expected)
    partition_created = False
    while True:
        try:
            if len(checked) == 1:
                written = _write_one(conn, schema, mode, cas, checked[0], recorded_at)
            elif len(checked) < COPY_THRESHOLD:
                written = _write_values(conn, schema, mode, cas, checked, recorded_at)
            else:
                written = _write_copy(conn, schema, mode, stream_id, cas, checked, recorded_at)
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name in ("event_ids_pkey", "streams_pkey"):
                return _repeat_or_raise(conn, schema, stream_id, events, digests, expected, mode)
            raise
        except psycopg.errors.CheckViolation as exc:
            # No partition for the row: sqlstate 23514 on the table itself, with no constraint named.
            if not partition_created and exc.diag.constraint_name is None and exc.diag.table_name == "events":
                # A month without a partition must not become an outage: create it and retry once.
                create_partition_for(conn, schema, recorded_at)
                partition_created = True
                continue
            raise
        except (psycopg.errors.StatementTooComplex, psycopg.errors.DataError) as exc:
            # Valid JSON beyond what JSONB holds (nesting deeper than the server's parser goes, numbers
            # outside numeric's range) is still a valid payload: keep it byte-exact, without the JSONB
            # copy, which only serves queries. Anything else is the caller's bad input.
            invalid = _invalid_payload(events, exc)
            flattened = None if invalid.field != "events" else _without_unrepresentable_copies(checked)
            if flattened is None:
                raise invalid from exc
            checked = flattened
            continue
        if not written:
            return _repeat_or_raise(conn, schema, stream_id, events, digests, expected, mode)
        # Built from the database's own answer: validating it again would only cost time on the hot path.
        return AppendResult.model_construct(
            stream_id=stream_id,
            sequence_numbers=tuple(r[0] for r in written),
            global_positions=tuple(r[1] for r in written),
            repeated=False,
        )


def _without_unrepresentable_copies(checked: list[_Checked]) -> list[_Checked] | None:
    """`checked` without JSONB copies for payloads JSONB may not hold, or None if there are none."""
    changed = [c._replace(is_json=False) if c.is_json and jsonb_may_refuse(c.event.payload) else c for c in checked]
    return changed if changed != checked else None


def _invalid_payload(events: Sequence[NewEvent], exc: Exception) -> InvalidInput:
    for index, event in enumerate(events):
        if wants_json_copy(event.payload, event.content_type):
            problem = json_problem(event.payload)
            if problem:
                return InvalidInput(
                    f"event {index} ({event.event_id}) is declared {event.content_type} but its payload is {problem}",
                    field=f"events[{index}].payload",
                )
    reason = exc.diag.message_primary if isinstance(exc, psycopg.Error) else str(exc)
    return InvalidInput(f"payload refused by the database: {reason}", field="events")


def stream_version(conn: psycopg.Connection[Any], schema: str, stream_id: str) -> int:
    row = conn.execute(
        sql.SQL("SELECT version FROM {} WHERE stream_id = %s").format(table(schema, STREAMS)),
        (stream_id,),
    ).fetchone()
    return int(row[0]) if row else 0


def _repeat_or_raise(
    conn: psycopg.Connection[Any],
    schema: str,
    stream_id: str,
    events: Sequence[NewEvent],
    digests: list[bytes],
    expected: ExpectedVersion,
    mode: str,
) -> AppendResult:
    """After a failed append: the first result if this batch was already stored as a whole, else an error.

    Follows EventStoreDB: the same event ids at the same positions (consistent with the expected
    version) with the same content are a repeat; an id stored elsewhere or with other content is an error.
    """
    ids = [e.event_id for e in events]
    stored = {
        row[0]: row[1:]
        for row in conn.execute(
            sql.SQL(
                "SELECT i.event_id, i.stream_id, i.sequence_number, e.global_position, e.event_type,"
                " e.payload_sha256 FROM {} AS i LEFT JOIN {} AS e USING (stream_id, sequence_number)"
                " WHERE i.event_id = ANY(%s)"
            ).format(table(schema, EVENT_IDS), table(schema, EVENTS)),
            (ids,),
        ).fetchall()
    }
    if not stored:
        raise ConcurrencyConflict(stream_id, _describe(expected), stream_version(conn, schema, stream_id))
    first_sequence: int | None = None
    positions: list[int] = []
    for index, (event, digest) in enumerate(zip(events, digests, strict=True)):
        found = stored.get(event.event_id)
        if found is None:
            raise DuplicateEventId(
                ids[next(i for i, e in enumerate(ids) if e in stored)],
                "while other events of the same batch are not; a retry must resend the whole batch",
            )
        found_stream, found_sequence, found_position, found_type, found_digest = found
        if found_position is None:
            raise DuplicateEventId(event.event_id, "as an id whose event was removed; ids are never reused")
        if found_stream != stream_id:
            raise DuplicateEventId(event.event_id, f"in another stream ({found_stream!r})")
        if first_sequence is None:
            first_sequence = found_sequence
        if found_sequence != first_sequence + index:
            raise DuplicateEventId(event.event_id, f"at another position ({found_sequence})")
        if found_type != event.event_type.value or bytes(found_digest) != digest:
            raise DuplicateEventId(event.event_id, "with other content")
        positions.append(found_position)
    assert first_sequence is not None
    consistent = (
        mode in ("any", "stream_exists")
        or (mode == "no_stream" and first_sequence == 1)
        or (mode == "exact" and first_sequence == int(expected) + 1)
    )
    if not consistent:
        actual = stream_version(conn, schema, stream_id)
        expectation_holds = (
            mode == "any"
            or (mode == "stream_exists" and actual > 0)
            or (mode == "no_stream" and actual == 0)
            or (mode == "exact" and actual == int(expected))
        )
        if expectation_holds:
            # The stream is where the caller expected it: the ids, not the version, are the problem, and
            # retrying at a fresh version would fail forever.
            raise DuplicateEventId(events[0].event_id, f"at another position ({first_sequence})")
        raise ConcurrencyConflict(stream_id, _describe(expected), actual)
    return AppendResult(
        stream_id=stream_id,
        sequence_numbers=tuple(range(first_sequence, first_sequence + len(events))),
        global_positions=tuple(positions),
        repeated=True,
    )


def _describe(expected: ExpectedVersion) -> str:
    if isinstance(expected, StreamState):
        return {"any": "any version", "no_stream": "no stream", "stream_exists": "an existing stream"}[expected.value]
    return "no stream" if expected == 0 else f"version {expected}"
