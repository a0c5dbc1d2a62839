"""One tenant's retention in the store: the payloads still held in their rows past the cutoff, and the
maintenance transaction that hands a batch over to its cold segment (docs/retention.md).

The archiver writes the segment and checks it first (`BlobPayloads.put_segment`); only then does `archive`,
run as the maintenance role, clear each payload and its JSONB copy, keep the cold reference and the wrapped
data key, and record a `PayloadsArchived` event in the tenant's maintenance stream, all in one transaction.
Every row is matched on its event id *and* the payload hash the segment was built from, still held: a batch
that no longer matches as a whole (another archiver got there first) changes nothing. A run killed before
the commit leaves a segment no row points at (found and listed by `orphans`), never a row without its bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from eventstore.errors import EventStoreError
from eventstore.event_types import EventType
from eventstore.models import AppendResult, NewEvent
from eventstore.store.cold_payloads import COLD_LOGICAL_NAME, COLD_PREFIX
from eventstore.store.connection import StorePool, run, translated_errors
from eventstore.store.maintenance_path import MaintenancePath
from eventstore.store.streams import MAINTENANCE_STREAM_ID
from eventstore.tenancy import container_name_for

# Held hot: in the row, or in a blob of the hot container. Written as literals (not parameters) so that the
# planner matches them to the partial indexes `events_held_payloads` and `events_held_blobs`.
_HELD_IN_ROW = "payload IS NOT NULL"
_HELD_IN_BLOB = "payload IS NULL AND blob_ref NOT LIKE 'cold:%%' AND blob_ref NOT LIKE 'erased:%%'"

_RETENTION_LOCK_CLASS = 0x45535254  # "ESRT": one archiver per tenant (a lock space apart from the feed's)


class ArchiveRaced(EventStoreError):
    """The batch no longer matches the rows (another archiver moved them first): nothing was changed."""


@dataclass(frozen=True)
class HeldPayload:
    event_id: UUID
    stream_id: str
    sequence_number: int
    global_position: int
    recorded_at: datetime
    payload: bytes | None
    """The payload held in the row; None for one held in a hot-container blob (`blob_ref`), read by the
    archiver."""
    payload_sha256: bytes
    """The SHA-256 of the payload as held (after a redaction, not the one received)."""
    blob_ref: str | None = None
    """A large payload's blob in the hot container (None: the payload is in the row)."""
    size: int = 0


@dataclass(frozen=True)
class WrappedKey:
    stream_id: str
    sequence_number: int
    recorded_at: datetime
    event_id: UUID
    wrapped: bytes


@dataclass(frozen=True)
class RetentionFigures:
    oldest_held_at: datetime | None
    """The oldest event still holding its payload in its row."""
    held_before: int
    """Events past the cutoff still holding their payload (what a run would move)."""
    held_bytes_before: int
    archived_events: int
    archived_bytes: int
    segments: int


class TenantRetention(MaintenancePath):
    """Obtain with `EventStore.retention(tenant_id)`."""

    @property
    def cold_container(self) -> str:
        return container_name_for(self.placement.tenant_id, COLD_LOGICAL_NAME)

    def held(self, before: datetime, limit: int) -> list[HeldPayload]:
        """The oldest `limit` events recorded before `before` whose payload is still held hot: in their row, or
        (a large one) in a blob of the hot container. The maintenance stream's own events stay where they are:
        they are the record of what was done."""
        statement = sql.SQL(
            "SELECT * FROM ("
            "(SELECT event_id, stream_id, sequence_number, global_position, recorded_at, payload,"
            " coalesce(redacted_sha256, payload_sha256), blob_ref, octet_length(payload) FROM {events}"
            " WHERE " + _HELD_IN_ROW + " AND recorded_at < %s AND stream_id <> %s"
            " ORDER BY recorded_at, global_position LIMIT %s)"
            " UNION ALL "
            "(SELECT event_id, stream_id, sequence_number, global_position, recorded_at, NULL,"
            " coalesce(redacted_sha256, payload_sha256), blob_ref, payload_size FROM {events}"
            " WHERE " + _HELD_IN_BLOB + " AND recorded_at < %s AND stream_id <> %s"
            " ORDER BY recorded_at, global_position LIMIT %s)"
            ") AS held ORDER BY recorded_at, global_position LIMIT %s"
        ).format(events=self._events)
        params = (before, MAINTENANCE_STREAM_ID, limit) * 2 + (limit,)
        rows = run(self._pool, lambda conn: conn.cursor(binary=True).execute(statement, params).fetchall())
        return [
            HeldPayload(r[0], r[1], r[2], r[3], r[4], None if r[5] is None else bytes(r[5]), bytes(r[6]), r[7], r[8])
            for r in rows
        ]

    def figures(self, before: datetime) -> RetentionFigures:
        # Both walk `events_held_payloads` from its start: the oldest held payload, and the few past the cutoff
        # (none, once retention keeps up), never the months still held.
        oldest = sql.SQL(
            "SELECT min(recorded_at) FROM ("
            "(SELECT recorded_at FROM {events} WHERE " + _HELD_IN_ROW + " AND stream_id <> %s"
            " ORDER BY recorded_at LIMIT 1) UNION ALL"
            " (SELECT recorded_at FROM {events} WHERE " + _HELD_IN_BLOB + " AND stream_id <> %s"
            " ORDER BY recorded_at LIMIT 1)) AS first"
        ).format(events=self._events)
        held = sql.SQL(
            "SELECT count(*), coalesce(sum(size), 0) FROM ("
            "SELECT payload_size AS size FROM {events} WHERE " + _HELD_IN_ROW + " AND recorded_at < %s"
            " AND stream_id <> %s UNION ALL SELECT payload_size FROM {events} WHERE " + _HELD_IN_BLOB + ""
            " AND recorded_at < %s AND stream_id <> %s) AS due"
        ).format(events=self._events)
        done = sql.SQL(
            "SELECT count(*), coalesce(sum((payload_json ->> 'events')::bigint), 0),"
            " coalesce(sum((payload_json ->> 'bytes')::bigint), 0)"
            " FROM {events} WHERE stream_id = %s AND event_type = %s"
        ).format(events=self._events)

        def read(conn: psycopg.Connection[Any]) -> RetentionFigures:
            first = conn.execute(oldest, (MAINTENANCE_STREAM_ID,) * 2).fetchone()
            due = conn.execute(held, (before, MAINTENANCE_STREAM_ID) * 2).fetchone()
            moved = conn.execute(done, (MAINTENANCE_STREAM_ID, EventType.PAYLOADS_ARCHIVED.value)).fetchone()
            assert due is not None and moved is not None
            return RetentionFigures(
                oldest_held_at=first[0] if first else None, held_before=int(due[0]), held_bytes_before=int(due[1]),
                segments=int(moved[0]), archived_events=int(moved[1]), archived_bytes=int(moved[2]),
            )  # fmt: skip

        return run(self._pool, read)

    def compactable(self, before: datetime) -> list[str]:
        """The months' partitions that ended by `before`, hold no payload any more (all moved to cold
        storage) and were never compacted: their space can be given back."""
        statement = sql.SQL(
            "SELECT c.relname, upper_bound FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,"
            " LATERAL (SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]"
            "::timestamptz AS upper_bound) AS b"
            " WHERE i.inhparent = to_regclass(%s) AND upper_bound <= %s"
            " AND NOT EXISTS (SELECT 1 FROM {events} AS e WHERE e.payload IS NOT NULL AND e.stream_id <> %s"
            "  AND e.recorded_at >= upper_bound - interval '1 month' AND e.recorded_at < upper_bound)"
            " AND NOT EXISTS (SELECT 1 FROM {events} AS m WHERE m.stream_id = %s AND m.event_type = %s"
            "  AND m.payload_json ->> 'partition' = c.relname)"
            " AND EXISTS (SELECT 1 FROM {events} AS a WHERE a.blob_ref LIKE 'cold:%%'"
            "  AND a.recorded_at >= upper_bound - interval '1 month' AND a.recorded_at < upper_bound)"
            " ORDER BY upper_bound"
        ).format(events=self._events)
        params = (
            self._events.as_string(None), before, MAINTENANCE_STREAM_ID, MAINTENANCE_STREAM_ID,
            EventType.PARTITION_COMPACTED.value,
        )  # fmt: skip
        rows = run(self._pool, lambda conn: conn.execute(statement, params).fetchall())
        return [str(r[0]) for r in rows]

    def compact(self, owner: StorePool, partition: str, record: Callable[[int, int, float], NewEvent]) -> NewEvent:
        """Rewrite `partition` (VACUUM FULL: every row kept, the dead space of the moved payloads given back to
        the operating system) as its owner, then record it (`record(bytes before, bytes after, seconds)`) in
        the maintenance stream; the record made. The partition is locked against reads while it is rewritten."""
        relation = sql.Identifier(self._schema, partition)

        def rewrite(conn: psycopg.Connection[Any]) -> tuple[int, int, float]:
            size = sql.SQL("SELECT pg_total_relation_size({})").format(sql.Literal(relation.as_string(None)))
            before_row = conn.execute(size).fetchone()
            began = time.monotonic()
            conn.execute(sql.SQL("VACUUM (FULL, ANALYZE) {}").format(relation))
            seconds = time.monotonic() - began
            after_row = conn.execute(size).fetchone()
            assert before_row is not None and after_row is not None
            return int(before_row[0]), int(after_row[0]), seconds

        with translated_errors():
            before, after, seconds = run(owner, rewrite, writes=True)
        event = record(before, after, seconds)
        run(self._maintenance, lambda conn: self._record(conn, event), writes=True)
        return event

    def recorded_segments(self) -> set[str]:
        """The segments `PayloadsArchived` records name: every segment a committed batch wrote."""
        statement = sql.SQL(
            "SELECT payload_json ->> 'segment' FROM {events} WHERE stream_id = %s AND event_type = %s"
        ).format(events=self._events)
        params = (MAINTENANCE_STREAM_ID, EventType.PAYLOADS_ARCHIVED.value)
        return {str(r[0]) for r in run(self._pool, lambda conn: conn.execute(statement, params).fetchall())}

    def record(self, event: NewEvent) -> AppendResult:
        """Record a maintenance action done outside the database (segments deleted) in the maintenance stream."""

        def record(conn: psycopg.Connection[Any]) -> AppendResult:
            self._ready_to_record(conn)
            return self._record(conn, event)

        return run(self._maintenance, record, writes=True)

    def wrapped_under(self, kids: Sequence[bytes], limit: int) -> list[WrappedKey]:
        """Up to `limit` archived payloads whose data key is wrapped under one of the archive keys `kids`."""
        statement = sql.SQL(
            "SELECT stream_id, sequence_number, recorded_at, event_id, archive_key FROM {events}"
            " WHERE archive_key IS NOT NULL AND substring(archive_key FROM 1 FOR 8) = ANY(%s) LIMIT %s"
        ).format(events=self._events)
        rows = run(self._pool, lambda conn: conn.execute(statement, (list(kids), limit)).fetchall())
        return [WrappedKey(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows]

    def count_wrapped_under(self, kids: Sequence[bytes]) -> int:
        """How many archived payloads' data keys are still wrapped under one of the archive keys `kids`."""
        statement = sql.SQL(
            "SELECT count(*) FROM {events}"
            " WHERE archive_key IS NOT NULL AND substring(archive_key FROM 1 FOR 8) = ANY(%s)"
        ).format(events=self._events)
        row = run(self._pool, lambda conn: conn.execute(statement, (list(kids),)).fetchone())
        return int(row[0]) if row else 0

    def rewrap(self, keys: Sequence[WrappedKey], rewrapped: Sequence[bytes], record: NewEvent) -> int:
        """Replace each of `keys` by its `rewrapped` form (the same data key under the current archive key) where
        the row still holds it, and record `record`; one transaction, as the maintenance role."""
        update = sql.SQL(
            "UPDATE {events} AS e SET archive_key = v.new FROM (SELECT * FROM unnest(%s::text[], %s::bigint[],"
            " %s::timestamptz[], %s::uuid[], %s::bytea[], %s::bytea[])) AS v(stream_id, sequence_number,"
            " recorded_at, event_id, old, new) WHERE e.stream_id = v.stream_id AND e.sequence_number ="
            " v.sequence_number AND e.recorded_at = v.recorded_at AND e.event_id = v.event_id"
            " AND e.archive_key = v.old"
        ).format(events=self._events)
        params = (
            [k.stream_id for k in keys], [k.sequence_number for k in keys], [k.recorded_at for k in keys],
            [k.event_id for k in keys], [k.wrapped for k in keys], list(rewrapped),
        )  # fmt: skip

        def rewrap(conn: psycopg.Connection[Any]) -> int:
            self._ready_to_record(conn)
            with conn.transaction():
                changed = conn.execute(update, params).rowcount
                self._record(conn, record)
            return changed

        return run(self._maintenance, rewrap, writes=True)

    @contextmanager
    def lock(self) -> Iterator[bool]:
        """Hold this tenant's archiver lock for the block (True), or find another archiver holding it (False):
        a session lock on a connection of its own, released by the server if this process dies."""
        key = f"{self._schema}/retention"
        with translated_errors(), self._maintenance.connection() as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_RETENTION_LOCK_CLASS, key)).fetchone()
            held = bool(row and row[0])
            try:
                yield held
            finally:
                if held:
                    conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (_RETENTION_LOCK_CLASS, key))

    def archive(
        self, batch: Sequence[HeldPayload], refs: Sequence[str], keys: Sequence[bytes], record: NewEvent
    ) -> AppendResult:
        """Hand `batch` over to its cold segment: each row's payload and JSONB copy cleared, its reference
        (`refs`, `cold:...`) and wrapped data key (`keys`) kept, `record` appended to the maintenance stream;
        one transaction, as the maintenance role. `ArchiveRaced` (and no change) when any row of the batch
        is not as it was read."""
        if not (len(batch) == len(refs) == len(keys)) or not batch:
            raise ValueError("a batch, its references and its keys go together, at least one of each")
        if any(not ref.startswith(COLD_PREFIX) for ref in refs):
            raise ValueError("archived payloads point at cold storage")
        update = sql.SQL(
            "UPDATE {events} AS e SET payload = NULL, payload_json = NULL, blob_ref = v.ref, archive_key = v.key"
            " FROM (SELECT * FROM unnest(%s::uuid[], %s::text[], %s::bigint[], %s::timestamptz[], %s::bytea[],"
            " %s::text[], %s::bytea[], %s::text[]))"
            " AS v(event_id, stream_id, sequence_number, recorded_at, sha256, ref, key, held_ref)"
            " WHERE e.stream_id = v.stream_id AND e.sequence_number = v.sequence_number"
            " AND e.recorded_at = v.recorded_at AND e.event_id = v.event_id"
            " AND coalesce(e.redacted_sha256, e.payload_sha256) = v.sha256"
            " AND e.blob_ref IS NOT DISTINCT FROM v.held_ref"
        ).format(events=self._events)
        params = (
            [b.event_id for b in batch], [b.stream_id for b in batch], [b.sequence_number for b in batch],
            [b.recorded_at for b in batch], [b.payload_sha256 for b in batch], list(refs), list(keys),
            [b.blob_ref for b in batch],
        )  # fmt: skip

        def archive(conn: psycopg.Connection[Any]) -> AppendResult:
            self._ready_to_record(conn)
            with conn.transaction():
                changed = conn.execute(update, params).rowcount
                if changed != len(batch):
                    raise ArchiveRaced(
                        f"{changed} of {len(batch)} payloads were still as read: another archiver moved them"
                    )
                return self._record(conn, record)

        return run(self._maintenance, archive, writes=True)
