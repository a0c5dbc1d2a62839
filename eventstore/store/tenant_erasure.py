"""One tenant's erasures in the store (docs/retention.md, "Erasure"): the events a subject's personal data is
in, and the maintenance transaction that removes their payloads everywhere the store keeps them, scrubs
the views' copies, and records the erasure in the maintenance stream.

An erased event keeps its row: ids, type, times, stream, user, correlation, the original SHA-256 and size;
so the log still proves that something was received, when and from whom. Its payload, JSONB copy, cold
reference and data key are gone; `blob_ref` says `erased:<erasure id>`, and a read answers `PayloadErased`
naming the erasure. A payload archived to a cold segment is crypto-shredded (its data key was only in the
row); a large payload's blob in the hot container is deleted after the commit unless another row still
points at it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from eventstore.errors import PayloadErased, StoreUnavailable
from eventstore.models import NewEvent, RecordedEvent
from eventstore.store.connection import run
from eventstore.store.maintenance_path import MaintenancePath
from eventstore.store.schema import EVENT_IDS, EVENTS, RECORDED_EVENT_COLUMNS, table
from eventstore.store.streams import AUDIT_STREAM_ID, MAINTENANCE_STREAM_ID, instance_stream_id
from eventstore.store.tenant_views import ViewWriter

ERASED_PREFIX = "erased:"

# A target's erasure is the one that removed its payload whole; a redaction leaves the event to erase.
_ERASED_BY = "CASE WHEN blob_ref LIKE 'erased:%%' THEN erasure_id END"

Scrub = tuple[Mapping[str, str], Callable[[ViewWriter], None]]
"""A view's tables and what to do to them in the erasure's transaction."""


@dataclass(frozen=True)
class ErasureTarget:
    event_id: UUID
    stream_id: str
    sequence_number: int
    recorded_at: datetime
    event_type: str
    blob_ref: str | None
    erasure_id: UUID | None
    """The erasure that already removed its payload, if one did."""
    payload_sha256: bytes
    payload_size: int


@dataclass(frozen=True)
class Redaction:
    """One payload rewritten by an erasure: the event as it was read, and what it holds now."""

    event: RecordedEvent
    payload: bytes
    """The redacted payload."""
    blob_ref: str | None
    """Where it is kept: None in the row, or a hot-container blob (over the inline limit)."""
    json_copy: bool
    """Whether the row keeps a JSONB copy of it (as it would on append)."""
    served: bytes
    """The SHA-256 of what the row held when it was read (the received payload's, or an earlier redaction's):
    the row is rewritten only if it still holds that."""


class ErasureRaced(StoreUnavailable):
    """A payload changed between its read and the erasure's transaction (the archiver moved it, or another
    erasure rewrote it): nothing was changed, and the erasure asked again sees it as it is now (a 503 with
    Retry-After over HTTP, once the erasure's own retries are spent)."""


def is_erased(blob_ref: str | None) -> bool:
    return blob_ref is not None and blob_ref.startswith(ERASED_PREFIX)


class TenantErasure(MaintenancePath):
    """Obtain with `EventStore.erasure(tenant_id)`."""

    def of_instance(self, workflow_instance_id: str) -> list[ErasureTarget]:
        """Every event of the instance's stream, and the received messages that name the instance."""
        statement = sql.SQL(
            "SELECT event_id, stream_id, sequence_number, recorded_at, event_type, blob_ref, " + _ERASED_BY + ","
            " payload_sha256, payload_size"
            " FROM {events} WHERE stream_id = %s"
            " OR (stream_id = {audit} AND workflow_instance_id = %s) ORDER BY global_position"
        ).format(events=self._events, audit=sql.Literal(AUDIT_STREAM_ID))  # a literal: the partial index's predicate
        params = (instance_stream_id(workflow_instance_id), workflow_instance_id)
        rows = run(self._pool, lambda conn: conn.execute(statement, params).fetchall())
        return [ErasureTarget(*r) for r in rows]

    def of_user(self, user_id: str) -> list[ErasureTarget]:
        """Every event recorded with this user id (the maintenance stream's own excepted)."""
        statement = sql.SQL(
            "SELECT event_id, stream_id, sequence_number, recorded_at, event_type, blob_ref, " + _ERASED_BY + ","
            " payload_sha256, payload_size"
            " FROM {events} WHERE user_id = %s AND stream_id <> %s ORDER BY global_position"
        ).format(events=self._events)
        rows = run(self._pool, lambda conn: conn.execute(statement, (user_id, MAINTENANCE_STREAM_ID)).fetchall())
        return [ErasureTarget(*r) for r in rows]

    def value_candidates(
        self, filters: Sequence[str], event_types: Sequence[str], *, offloaded: bool
    ) -> list[tuple[RecordedEvent, bytes]]:
        """Events that may hold a value, each with the SHA-256 of what it holds now. With `offloaded` False,
        those kept in the row whose JSONB copy one of the jsonpath `filters` matches (the JSONB index answers);
        with True, every JSON payload kept in Blob or cold storage, which has no copy to ask and must be read.
        `event_types` (when given) narrows both; the maintenance stream's own events and erased ones are never
        candidates."""
        types = sql.SQL(" AND e.event_type = ANY(%s)") if event_types else sql.SQL("")
        where: sql.Composable
        if offloaded:
            where = sql.SQL(
                "e.payload IS NULL AND e.blob_ref NOT LIKE %s AND (split_part(lower(e.content_type), ';', 1)"
                " IN ('application/json', 'text/json') OR split_part(lower(e.content_type), ';', 1) LIKE %s)"
            )
            params: list[Any] = [ERASED_PREFIX + "%", "%+json"]
        else:
            if not filters:
                return []
            where = (
                sql.SQL("(")
                + sql.SQL(" OR ").join(sql.SQL("e.payload_json @? %s::jsonpath") for _ in filters)
                + sql.SQL(")")
            )
            params = list(filters)
        statement = sql.SQL(
            "SELECT " + RECORDED_EVENT_COLUMNS + ", coalesce(e.redacted_sha256, e.payload_sha256) FROM {events} AS e"
            " WHERE {where} AND e.stream_id <> %s{types}"
            " ORDER BY e.global_position"
        ).format(events=self._events, where=where, types=types)
        params.append(MAINTENANCE_STREAM_ID)
        if event_types:
            params.append(list(event_types))
        rows = run(self._pool, lambda conn: conn.cursor(binary=True).execute(statement, params).fetchall())
        width = len(RecordedEvent._fields)
        return [(RecordedEvent._make(r[:width]), bytes(r[width])) for r in rows]

    def redact(
        self, redactions: Sequence[Redaction], erasure_id: UUID, record: NewEvent, scrubs: Sequence[Scrub]
    ) -> int:
        """Rewrite each payload of `redactions` in its row (or point at its new blob), destroy any cold data key
        it had (the archived original is crypto-shredded), run `scrubs` and record `record`, in one transaction
        as the maintenance role. `ErasureRaced` (and no change) when any row is not as it was read."""
        update = sql.SQL(
            "UPDATE {events} AS e SET payload = v.payload, blob_ref = v.ref, archive_key = NULL,"
            " payload_json = CASE WHEN v.copy THEN convert_from(v.payload, 'UTF8')::jsonb END,"
            " redacted_sha256 = v.sha256, erasure_id = %s"
            " FROM (SELECT * FROM unnest(%s::uuid[], %s::text[], %s::bigint[], %s::timestamptz[], %s::bytea[],"
            " %s::text[], %s::bytea[], %s::text[], %s::bytea[], %s::bool[]))"
            " AS v(event_id, stream_id, sequence_number, recorded_at, served, old_ref, payload, ref, sha256, copy)"
            " WHERE e.stream_id = v.stream_id AND e.sequence_number = v.sequence_number"
            " AND e.recorded_at = v.recorded_at AND e.event_id = v.event_id"
            " AND coalesce(e.redacted_sha256, e.payload_sha256) = v.served"
            " AND e.blob_ref IS NOT DISTINCT FROM v.old_ref"
        ).format(events=self._events)
        events = [r.event for r in redactions]
        params = (
            erasure_id, [e.event_id for e in events], [e.stream_id for e in events],
            [e.sequence_number for e in events], [e.recorded_at for e in events],
            [r.served for r in redactions], [e.blob_ref for e in events],
            [r.payload if r.blob_ref is None else None for r in redactions], [r.blob_ref for r in redactions],
            [hashlib.sha256(r.payload).digest() for r in redactions], [r.json_copy for r in redactions],
        )  # fmt: skip

        def redact(conn: psycopg.Connection[Any]) -> int:
            self._ready_to_record(conn)
            with conn.transaction():
                changed = conn.execute(update, params).rowcount if redactions else 0
                if changed != len(redactions):
                    raise ErasureRaced(
                        f"{len(redactions) - changed} of {len(redactions)} payloads changed since they were read"
                    )
                for tables, scrub in scrubs:
                    scrub(ViewWriter(conn, self._schema, tables))
                self._record(conn, record)
            return changed

        return run(self._maintenance, redact, writes=True)

    def erase(
        self, targets: Sequence[ErasureTarget], erasure_id: UUID, record: NewEvent, scrubs: Sequence[Scrub]
    ) -> int:
        """Remove the payloads of `targets` not erased yet, run `scrubs` over the views and record `record`
        (whose event id is `erasure_id`), in one transaction as the maintenance role."""
        pending = [t for t in targets if t.erasure_id is None]
        update = sql.SQL(
            "UPDATE {events} AS e SET payload = NULL, payload_json = NULL, archive_key = NULL, redacted_sha256 = NULL,"
            " erasure_id = %s,"
            " blob_ref = %s FROM (SELECT * FROM unnest(%s::text[], %s::bigint[], %s::timestamptz[], %s::uuid[]))"
            " AS v(stream_id, sequence_number, recorded_at, event_id)"
            " WHERE e.stream_id = v.stream_id AND e.sequence_number = v.sequence_number"
            " AND e.recorded_at = v.recorded_at AND e.event_id = v.event_id"
            " AND (e.blob_ref IS NULL OR e.blob_ref NOT LIKE 'erased:%%')"
        ).format(events=self._events)
        params = (
            erasure_id, f"{ERASED_PREFIX}{erasure_id}", [t.stream_id for t in pending],
            [t.sequence_number for t in pending], [t.recorded_at for t in pending], [t.event_id for t in pending],
        )  # fmt: skip

        def erase(conn: psycopg.Connection[Any]) -> int:
            self._ready_to_record(conn)
            with conn.transaction():
                erased = conn.execute(update, params).rowcount if pending else 0
                for tables, scrub in scrubs:
                    scrub(ViewWriter(conn, self._schema, tables))
                self._record(conn, record)
            return erased

        return run(self._maintenance, erase, writes=True)

    def unreferenced_blobs(self, targets: Sequence[ErasureTarget]) -> list[str]:
        """The hot-container blobs the erased `targets` had (large payloads are named by their SHA-256) that
        no row points at any more: to delete. Asked again after a failed delete, it names them again."""
        container = self.placement.container_name
        candidates = {
            f"{container}/{t.payload_sha256.hex()}"
            for t in targets
            if t.erasure_id is not None and t.payload_size > self._settings.inline_payload_limit
        } | {  # a redacted payload's own blob, named by its redacted bytes
            str(t.blob_ref) for t in targets if t.erasure_id is not None and str(t.blob_ref).startswith(container + "/")
        }
        return self.blobs_unreferenced(sorted(candidates))

    def erasure_of(self, event: RecordedEvent) -> PayloadErased:
        """What to answer for a read of an erased event: the erasure, when, why and by whom."""
        return run(self._pool, lambda conn: erasure_of(conn, self._schema, event))


def erasure_of(conn: psycopg.Connection[Any], schema: str, event: RecordedEvent) -> PayloadErased:
    """What to answer for a read of an erased event: the erasure its reference names (the event the erasure
    recorded in the maintenance stream), when, why and by whom."""
    erasure_id = UUID(str(event.blob_ref)[len(ERASED_PREFIX) :])
    statement = sql.SQL(
        "SELECT e.recorded_at, e.payload_json ->> 'reason', e.payload_json ->> 'requestedBy'"
        " FROM {events} AS e WHERE (e.stream_id, e.sequence_number) ="
        " (SELECT stream_id, sequence_number FROM {ids} WHERE event_id = %s)"
    ).format(events=table(schema, EVENTS), ids=table(schema, EVENT_IDS))
    row = conn.execute(statement, (erasure_id,)).fetchone()
    if row is None:
        return PayloadErased(event.event_id, erasure_id, None, None, None)
    return PayloadErased(event.event_id, erasure_id, row[0], row[1], row[2])
