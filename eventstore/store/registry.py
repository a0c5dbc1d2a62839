"""The tenant registry: which DSN, schema and Blob container hold each tenant's data."""

from __future__ import annotations

from datetime import datetime
from threading import Lock
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from eventstore.errors import InvalidInput, UnknownTenant
from eventstore.store.connection import run, translated_errors
from eventstore.store.schema import ALERTS_ACTIVE, REPLAY_ACTIVE, TENANTS, table
from eventstore.tenancy import TenantPlacement

_COLUMNS = "tenant_id, dsn_name, schema_name, container_name"


class TenantRegistry:
    """Reads and writes `<prefix>control.tenants`. Placements are cached once found: they never move."""

    def __init__(self, pool: ConnectionPool, control_schema: str) -> None:
        self._pool = pool
        self._table = table(control_schema, TENANTS)
        self._replaying = table(control_schema, REPLAY_ACTIVE)
        self._alerting = table(control_schema, ALERTS_ACTIVE)
        self._cache: dict[str, TenantPlacement] = {}
        self._lock = Lock()

    def get(self, tenant_id: str) -> TenantPlacement:
        placement = self._cache.get(tenant_id)
        if placement is not None:
            return placement
        placement = self.find(tenant_id)
        if placement is None:
            raise UnknownTenant(tenant_id)
        return placement

    def find(self, tenant_id: str) -> TenantPlacement | None:
        query = sql.SQL("SELECT " + _COLUMNS + " FROM {} WHERE tenant_id = %s").format(self._table)
        row = run(self._pool, lambda conn: conn.execute(query, (tenant_id,)).fetchone())
        if row is None:
            return None
        placement = TenantPlacement(tenant_id=row[0], dsn_name=row[1], schema_name=row[2], container_name=row[3])
        with self._lock:
            self._cache[tenant_id] = placement
        return placement

    def mark_replaying(self, tenant_id: str) -> None:
        """The tenant has a replay job to drive (the replay timer visits it until `unmark_replaying`)."""
        query = sql.SQL(
            "INSERT INTO {} (tenant_id) VALUES (%s) ON CONFLICT (tenant_id) DO UPDATE SET marked_at = now()"
        ).format(self._replaying)
        run(self._pool, lambda conn: conn.execute(query, (tenant_id,)), writes=True)

    def replaying(self) -> list[tuple[str, datetime]]:
        """Tenants marked as having replay jobs to drive, with when they were marked."""
        query = sql.SQL("SELECT tenant_id, marked_at FROM {} ORDER BY tenant_id").format(self._replaying)
        return [(r[0], r[1]) for r in run(self._pool, lambda conn: conn.execute(query).fetchall())]

    def unmark_replaying(self, tenant_id: str, marked_at: datetime) -> None:
        """Unmark the tenant, unless it was marked again after `marked_at` (a job created meanwhile)."""
        query = sql.SQL("DELETE FROM {} WHERE tenant_id = %s AND marked_at <= %s").format(self._replaying)
        run(self._pool, lambda conn: conn.execute(query, (tenant_id, marked_at)), writes=True)

    def mark_alerting(self, tenant_id: str) -> None:
        """The tenant has an open incident or notifications to send (the alert timer visits it)."""
        query = sql.SQL(
            "INSERT INTO {} (tenant_id) VALUES (%s) ON CONFLICT (tenant_id) DO UPDATE SET marked_at = now()"
        ).format(self._alerting)
        run(self._pool, lambda conn: conn.execute(query, (tenant_id,)), writes=True)

    def alerting(self) -> list[tuple[str, datetime]]:
        query = sql.SQL("SELECT tenant_id, marked_at FROM {} ORDER BY tenant_id").format(self._alerting)
        return [(r[0], r[1]) for r in run(self._pool, lambda conn: conn.execute(query).fetchall())]

    def unmark_alerting(self, tenant_id: str, marked_at: datetime) -> None:
        """Unmark the tenant, unless it was marked again after `marked_at`."""
        query = sql.SQL("DELETE FROM {} WHERE tenant_id = %s AND marked_at <= %s").format(self._alerting)
        run(self._pool, lambda conn: conn.execute(query, (tenant_id, marked_at)), writes=True)

    def clash(self, placement: TenantPlacement) -> str | None:
        """What of `placement` (schema or container) another tenant already holds, if anything."""
        query = sql.SQL(
            "SELECT CASE WHEN container_name = %s THEN 'container' ELSE 'schema' END FROM {}"
            " WHERE tenant_id <> %s AND (container_name = %s OR (dsn_name = %s AND schema_name = %s)) LIMIT 1"
        ).format(self._table)
        params = (
            placement.container_name,
            placement.tenant_id,
            placement.container_name,
            placement.dsn_name,
            placement.schema_name,
        )
        with translated_errors(), self._pool.connection() as conn:
            row = conn.execute(query, params).fetchone()
        return str(row[0]) if row else None

    def all(self) -> list[TenantPlacement]:
        query = sql.SQL("SELECT " + _COLUMNS + " FROM {} ORDER BY tenant_id").format(self._table)
        with translated_errors(), self._pool.connection() as conn:
            rows = conn.execute(query).fetchall()
        return [TenantPlacement(tenant_id=r[0], dsn_name=r[1], schema_name=r[2], container_name=r[3]) for r in rows]

    def versions(self) -> dict[str, int]:
        """Each tenant's recorded schema version (what `migrate` brought it to last)."""
        query = sql.SQL("SELECT tenant_id, schema_version FROM {}").format(self._table)
        with translated_errors(), self._pool.connection() as conn:
            return {str(r[0]): int(r[1]) for r in conn.execute(query).fetchall()}

    def register(
        self, conn: psycopg.Connection[tuple[Any, ...]], placement: TenantPlacement, version: int
    ) -> TenantPlacement:
        """Record a placement (after its schema exists). A tenant never moves: another placement is refused."""
        query = sql.SQL(
            "INSERT INTO {} AS t (" + _COLUMNS + ", schema_version) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (tenant_id) DO UPDATE"
            " SET schema_version = greatest(t.schema_version, EXCLUDED.schema_version) "
            "RETURNING " + _COLUMNS
        ).format(self._table)
        try:
            row = conn.execute(
                query,
                (placement.tenant_id, placement.dsn_name, placement.schema_name, placement.container_name, version),
            ).fetchone()
        except psycopg.errors.UniqueViolation as exc:
            if "container" in (exc.diag.constraint_name or ""):
                raise InvalidInput(
                    f"container {placement.container_name} already belongs to another tenant", field="container"
                ) from exc
            raise InvalidInput(
                f"schema {placement.schema_name} in DSN {placement.dsn_name} already belongs to another tenant",
                field="schema",
            ) from exc
        assert row is not None
        stored = TenantPlacement(tenant_id=row[0], dsn_name=row[1], schema_name=row[2], container_name=row[3])
        if stored != placement:
            raise InvalidInput(
                f"tenant {placement.tenant_id} is already placed in DSN {stored.dsn_name}, schema "
                f"{stored.schema_name}, container {stored.container_name}; moving a tenant is not supported",
                field="placement",
            )
        with self._lock:
            self._cache[placement.tenant_id] = stored
        return stored
