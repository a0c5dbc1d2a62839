"""What the maintenance operations on one tenant share (retention, erasure: docs/retention.md): reads through
the application's pool, changes through the maintenance role's, and each change recorded as an event of the
tenant's `maintenance` stream in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from eventstore.models import AppendResult, NewEvent, StreamState
from eventstore.settings import Settings
from eventstore.store.append_events import append_events
from eventstore.store.connection import StorePool, run
from eventstore.store.partitions import create_partition_for
from eventstore.store.schema import EVENTS, table
from eventstore.store.streams import MAINTENANCE_STREAM_ID
from eventstore.tenancy import TenantPlacement


class MaintenancePath:
    def __init__(self, placement: TenantPlacement, pool: StorePool, maintenance: StorePool, settings: Settings) -> None:
        self.placement = placement
        self._schema = placement.schema_name
        self._pool = pool
        self._maintenance = maintenance
        self._settings = settings
        self._events = table(self._schema, EVENTS)

    @property
    def tenant_id(self) -> str:
        return self.placement.tenant_id

    def blobs_unreferenced(self, refs: Sequence[str]) -> list[str]:
        """Of the hot-container blob references `refs`, those no row points at any more: to delete."""
        if not refs:
            return []
        # Phrased as the partial index `events_hot_blob_refs` is, so that it answers.
        statement = sql.SQL(
            "SELECT DISTINCT blob_ref FROM {events} WHERE blob_ref = ANY(%s)"
            " AND payload IS NULL AND blob_ref NOT LIKE 'cold:%%' AND blob_ref NOT LIKE 'erased:%%'"
        ).format(events=self._events)
        used = {r[0] for r in run(self._pool, lambda conn: conn.execute(statement, (list(refs),)).fetchall())}
        return sorted(ref for ref in set(refs) if ref not in used)

    def _ready_to_record(self, conn: psycopg.Connection[Any]) -> None:
        """Make sure this month has its partition, before a transaction that records: inside one, a missing
        partition would abort the transaction instead of being created on the spot."""
        create_partition_for(conn, self._schema, None)

    def _record(self, conn: psycopg.Connection[Any], event: NewEvent) -> AppendResult:
        """Append `event` to the tenant's maintenance stream on `conn` (in its transaction, if one is open)."""
        return append_events(
            conn, self._schema, MAINTENANCE_STREAM_ID, [event], StreamState.ANY,
            inline_limit=self._settings.inline_payload_limit, max_batch=1,
        )  # fmt: skip
