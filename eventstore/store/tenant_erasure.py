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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from eventstore.errors import PayloadErased
from eventstore.models import NewEvent, RecordedEvent
from eventstore.store.connection import run
from eventstore.store.maintenance_path import MaintenancePath
from eventstore.store.schema import EVENT_IDS, EVENTS, table
from eventstore.store.streams import AUDIT_STREAM_ID, MAINTENANCE_STREAM_ID, instance_stream_id
from eventstore.store.tenant_views import ViewWriter

ERASED_PREFIX = "erased:"

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


def is_erased(blob_ref: str | None) -> bool:
    return blob_ref is not None and blob_ref.startswith(ERASED_PREFIX)


class TenantErasure(MaintenancePath):
    """Obtain with `EventStore.erasure(tenant_id)`."""

    def of_instance(self, workflow_instance_id: str) -> list[ErasureTarget]:
        """Every event of the instance's stream, and the received messages that name the instance."""
        statement = sql.SQL(
            "SELECT event_id, stream_id, sequence_number, recorded_at, event_type, blob_ref, erasure_id,"
            " payload_sha256, payload_size"
            " FROM {events} WHERE stream_id = %s"
            " OR (stream_id = %s AND workflow_instance_id = %s) ORDER BY global_position"
        ).format(events=self._events)
        params = (instance_stream_id(workflow_instance_id), AUDIT_STREAM_ID, workflow_instance_id)
        rows = run(self._pool, lambda conn: conn.execute(statement, params).fetchall())
        return [ErasureTarget(*r) for r in rows]

    def of_user(self, user_id: str) -> list[ErasureTarget]:
        """Every event recorded with this user id (the maintenance stream's own excepted)."""
        statement = sql.SQL(
            "SELECT event_id, stream_id, sequence_number, recorded_at, event_type, blob_ref, erasure_id,"
            " payload_sha256, payload_size"
            " FROM {events} WHERE user_id = %s AND stream_id <> %s ORDER BY global_position"
        ).format(events=self._events)
        rows = run(self._pool, lambda conn: conn.execute(statement, (user_id, MAINTENANCE_STREAM_ID)).fetchall())
        return [ErasureTarget(*r) for r in rows]

    def erase(
        self, targets: Sequence[ErasureTarget], erasure_id: UUID, record: NewEvent, scrubs: Sequence[Scrub]
    ) -> int:
        """Remove the payloads of `targets` not erased yet, run `scrubs` over the views and record `record`
        (whose event id is `erasure_id`), in one transaction as the maintenance role."""
        pending = [t for t in targets if t.erasure_id is None]
        update = sql.SQL(
            "UPDATE {events} AS e SET payload = NULL, payload_json = NULL, archive_key = NULL, erasure_id = %s,"
            " blob_ref = %s FROM (SELECT * FROM unnest(%s::text[], %s::bigint[], %s::timestamptz[], %s::uuid[]))"
            " AS v(stream_id, sequence_number, recorded_at, event_id)"
            " WHERE e.stream_id = v.stream_id AND e.sequence_number = v.sequence_number"
            " AND e.recorded_at = v.recorded_at AND e.event_id = v.event_id AND e.erasure_id IS NULL"
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
        candidates = sorted(
            {
                f"{self.placement.container_name}/{t.payload_sha256.hex()}"
                for t in targets
                if t.erasure_id is not None and t.payload_size > self._settings.inline_payload_limit
            }
        )
        if not candidates:
            return []
        statement = sql.SQL("SELECT DISTINCT blob_ref FROM {events} WHERE blob_ref = ANY(%s)").format(
            events=self._events
        )
        used = {r[0] for r in run(self._pool, lambda conn: conn.execute(statement, (candidates,)).fetchall())}
        return [ref for ref in candidates if ref not in used]

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
