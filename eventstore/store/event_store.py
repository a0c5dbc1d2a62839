"""The store's entry point: tenants (onboarding, registry, migrations, partitions), their events and
their change feeds."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from eventstore.errors import InvalidInput, StoreUnavailable
from eventstore.settings import Settings
from eventstore.store import migrations
from eventstore.store.alert_reports import AlertReports
from eventstore.store.blob_payloads import BlobPayloads
from eventstore.store.cold_payloads import ArchiveKeys
from eventstore.store.connection import Pools, run, translated_errors
from eventstore.store.partitions import create_partition_for, ensure_partitions, list_partitions, months_missing
from eventstore.store.queue_dead_letters import QueueDeadLetters
from eventstore.store.read_feed import WritingTransaction, oldest_writing_transaction
from eventstore.store.registry import TenantRegistry
from eventstore.store.schema import TENANTS, table
from eventstore.store.tenant_alerts import TenantAlerts
from eventstore.store.tenant_erasure import TenantErasure
from eventstore.store.tenant_events import Clock, TenantEvents
from eventstore.store.tenant_feed import TenantFeed
from eventstore.store.tenant_replays import TenantReplays
from eventstore.store.tenant_retention import TenantRetention
from eventstore.store.tenant_views import TenantViews
from eventstore.tenancy import (
    TenantPlacement,
    container_name_for,
    schema_name_for,
    validate_container_name,
    validate_schema_name,
    validate_tenant_id,
)

log = logging.getLogger(__name__)


class EventStore:
    """Holds the connection pools and the tenant registry; hands out one `TenantEvents` and one
    `TenantFeed` per tenant.

    `clock`, when given, stamps events instead of the database's now() (tests of month boundaries).
    """

    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.pools = Pools(settings)
        self.control_schema = settings.schema_prefix + "control"
        self._registry: TenantRegistry | None = None
        self._payloads: BlobPayloads | None = None
        self._archive_keys: ArchiveKeys | None = None
        self._tenants: dict[str, TenantEvents] = {}
        self._feeds: dict[str, TenantFeed] = {}
        self._views: dict[str, TenantViews] = {}

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.pools.close()

    @property
    def payloads(self) -> BlobPayloads | None:
        """Blob storage for large payloads, or None when neither an account URL nor a connection string is set."""
        if self._payloads is None:
            self._payloads = BlobPayloads.from_settings(self.settings)
        return self._payloads

    def archive_keys(self) -> ArchiveKeys | None:
        """The archive key that wraps archived payloads' data keys (read once), or None when not configured."""
        if self._archive_keys is None:
            self._archive_keys = ArchiveKeys.from_settings(self.settings)
        return self._archive_keys

    @property
    def registry(self) -> TenantRegistry:
        if self._registry is None:
            if self.pools.has_owner("default"):
                self.migrate_control()
            else:
                self._require_migrated()
            self._registry = TenantRegistry(self.pools.app("default"), self.control_schema)
        return self._registry

    def _require_migrated(self) -> None:
        """An app without the owner DSN cannot create the registry: say so, rather than fail on a missing table."""

        def exists(conn: psycopg.Connection[Any]) -> bool:
            row = conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL", (table(self.control_schema, TENANTS).as_string(None),)
            ).fetchone()
            return bool(row and row[0])

        if not run(self.pools.app("default"), exists):
            raise StoreUnavailable(
                f"the database has no tenant registry ({self.control_schema}): run `eventstore migrate` with the "
                "owner DSN (infra/migrate.sh) before the app"
            )

    @property
    def alert_reports(self) -> AlertReports:
        """The weekly summary's sends (control schema)."""
        self.registry  # noqa: B018 (the control schema is migrated on first use)
        return AlertReports(self.pools.app("default"), self.control_schema)

    def retention(self, tenant_id: str) -> TenantRetention:
        """The tenant's payloads past retention, and the maintenance transaction that archives them."""
        canonical = validate_tenant_id(tenant_id)
        placement = self.registry.get(canonical)
        return TenantRetention(
            placement, self.pools.app(placement.dsn_name), self.pools.maintenance(placement.dsn_name), self.settings
        )

    def erasure(self, tenant_id: str) -> TenantErasure:
        """The tenant's erasures: the events a subject's data is in, and the transaction that removes it."""
        canonical = validate_tenant_id(tenant_id)
        placement = self.registry.get(canonical)
        return TenantErasure(
            placement, self.pools.app(placement.dsn_name), self.pools.maintenance(placement.dsn_name), self.settings
        )

    def queue_dead_letters(self) -> QueueDeadLetters:
        """The ingest queues' dead letters and the deployment's alert outbox (control schema)."""
        self.registry  # noqa: B018 (the control schema is migrated on first use)
        pools = self.pools
        return QueueDeadLetters(pools.app("default"), self.control_schema, lambda: pools.maintenance("default"))

    def migrate_control(self) -> int:
        """Create or upgrade the control schema (tenant registry) and the application role."""
        with translated_errors(), self.pools.owner("default").connection() as conn, conn.transaction():
            # Processes that start together all get here; two GRANTs on one catalog row at once fail with
            # "tuple concurrently updated", so the role, the migration and the grants go one at a time.
            migrations.lock_migrations(conn, "control")
            migrations.ensure_role(conn, self.settings.app_role)
            migrations.ensure_role(conn, self.settings.maintenance_role)
            version = migrations.migrate(
                conn, "control", self.control_schema, self.settings.app_role, self.settings.maintenance_role
            )
            conn.execute(
                sql.SQL("GRANT USAGE ON SCHEMA {schema} TO {role}; GRANT SELECT ON {table} TO {role}").format(
                    schema=sql.Identifier(self.control_schema),
                    table=table(self.control_schema, TENANTS),
                    role=sql.Identifier(self.settings.app_role),
                )
            )
            self._grant_read_all_stats(conn)
        return version

    def _grant_read_all_stats(self, conn: psycopg.Connection[Any]) -> None:
        """Let the application role see other sessions' transaction ids: the timers' "nothing in flight"
        signal (`PendingWork`) and the feed's oldest open transaction need it, and the running app has no
        owner role to ask. Where the owner may not grant it, the timers only poll more: said, not fatal."""
        role = self.settings.app_role
        held = conn.execute("SELECT pg_has_role(%s, 'pg_read_all_stats', 'USAGE')", (role,)).fetchone()
        if held and held[0]:
            return
        try:
            with conn.transaction():
                conn.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(role)))
        except psycopg.errors.InternalError_ as exc:
            # Role membership is per server, the migration lock per database: a migration of another database
            # may grant it at the same moment ("tuple concurrently updated"). Then it is granted.
            held = conn.execute("SELECT pg_has_role(%s, 'pg_read_all_stats', 'USAGE')", (role,)).fetchone()
            if not (held and held[0]):
                raise StoreUnavailable(f"could not grant pg_read_all_stats to {role}: {exc}") from exc
        except psycopg.errors.InsufficientPrivilege as exc:
            log.warning(
                "could not grant pg_read_all_stats to %s (%s): idle tenants' readers are not skipped, so the "
                "timers poll every tenant", role, exc.diag.message_primary,
            )  # fmt: skip

    def grant_login(self, login: str, dsn_name: str = "default") -> None:
        """Let the database login `login` (the app's managed identity, or a password login for PgBouncer) run
        the app: a member of the application and maintenance roles, whose sessions on this database start as
        the application role (`ALTER ROLE ... IN DATABASE ... SET role`), so a transaction pooler's server
        connections need no SET ROLE. It is given no other role: it cannot reach the owner's rights."""
        if not re.fullmatch(r"[^\x00]{1,63}", login):
            raise InvalidInput("a login name is 1 to 63 characters", field="login")
        with translated_errors(), self.pools.owner(dsn_name).connection() as conn, conn.transaction():
            migrations.lock_migrations(conn, "control")
            exists = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
            if exists is None:
                raise InvalidInput(f"no login {login!r} exists on this server: create it first", field="login")
            if exists[0]:
                raise InvalidInput(f"{login!r} is a superuser: the app must not log in as one", field="login")
            database = conn.execute("SELECT current_database()").fetchone()
            assert database is not None
            settings = self.settings
            for role in (settings.app_role, settings.maintenance_role):
                migrations.ensure_role(conn, role)
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(login)))
            conn.execute(
                sql.SQL("ALTER ROLE {} IN DATABASE {} SET role = {}").format(
                    sql.Identifier(login), sql.Identifier(database[0]), sql.Literal(settings.app_role)
                )
            )

    def placement_for(
        self, tenant_id: str, *, dsn_name: str | None = None, schema: str | None = None, container: str | None = None
    ) -> TenantPlacement:
        """Where a tenant goes: the defaults derived from its id, or the given overrides (validated)."""
        canonical = validate_tenant_id(tenant_id)
        if dsn_name is not None and dsn_name != "default" and dsn_name not in self.settings.dsns:
            raise InvalidInput(f"no DSN named {dsn_name!r} is configured", field="dsnName")
        return TenantPlacement(
            tenant_id=canonical,
            dsn_name=dsn_name or "default",
            schema_name=validate_schema_name(schema)
            if schema
            else schema_name_for(canonical, self.settings.schema_prefix),
            container_name=validate_container_name(container) if container else container_name_for(canonical),
        )

    def onboard_tenant(
        self, tenant_id: str, *, dsn_name: str | None = None, schema: str | None = None, container: str | None = None
    ) -> TenantPlacement:
        """Create or migrate the tenant's schema and partitions, then register it. Idempotent."""
        placement = self.placement_for(tenant_id, dsn_name=dsn_name, schema=schema, container=container)
        if placement.schema_name == self.control_schema:
            raise InvalidInput(f"schema {placement.schema_name} is the registry's own", field="schema")
        clash = self.registry.clash(placement)
        if clash is not None:
            # Refused before anything is created: a refused onboarding leaves no schema behind.
            name = placement.container_name if clash == "container" else placement.schema_name
            raise InvalidInput(f"{clash} {name} already belongs to another tenant", field=clash)
        existing = self.registry.find(placement.tenant_id)
        if existing is not None:
            if (dsn_name, schema, container) == (None, None, None):
                placement = existing  # a plain re-onboard keeps whatever placement the tenant has
            elif placement != existing:
                # Refuse before migrating anything, so a refused move leaves no orphan schema behind.
                raise InvalidInput(
                    f"tenant {placement.tenant_id} is already placed in DSN {existing.dsn_name}, schema "
                    f"{existing.schema_name}, container {existing.container_name}; moving a tenant is not supported",
                    field="placement",
                )
        version = self._migrate_tenant(placement)
        with translated_errors(), self.pools.owner("default").connection() as conn, conn.transaction():
            return self.registry.register(conn, placement, version)

    def _migrate_tenant(self, placement: TenantPlacement) -> int:
        if placement.dsn_name != "default":
            with translated_errors(), self.pools.owner(placement.dsn_name).connection() as conn, conn.transaction():
                migrations.lock_migrations(conn, "control")  # the role's grants, as in migrate_control
                migrations.ensure_role(conn, self.settings.app_role)
                migrations.ensure_role(conn, self.settings.maintenance_role)
        with translated_errors(), self.pools.owner(placement.dsn_name).connection() as conn:
            version = migrations.migrate(
                conn, "tenant", placement.schema_name, self.settings.app_role, self.settings.maintenance_role
            )
            ensure_partitions(conn, placement.schema_name, self.settings.partitions_ahead)
        return version

    def migrate(
        self, progress: Callable[[int, int, TenantPlacement, int], None] | None = None, *, every: bool = False
    ) -> list[tuple[TenantPlacement, int]]:
        """Bring the control schema and every registered tenant's schema to the latest version, one tenant per
        transaction. Resumable: a tenant the registry records at the latest version is skipped (unless `every`),
        so a run stopped half-way (a deploy cut off, a lost connection) goes on where it stopped when run again,
        and a run with nothing to do reads one table. Returns the tenants migrated, each with its version."""
        self.migrate_control()
        latest = migrations.latest_version("tenant")
        versions = self.registry.versions()
        tenants = [p for p in self.registry.all() if every or versions.get(p.tenant_id, 0) < latest]
        done = []
        for index, placement in enumerate(tenants, 1):
            version = self._migrate_tenant(placement)
            with translated_errors(), self.pools.owner("default").connection() as conn, conn.transaction():
                self.registry.register(conn, placement, version)
            done.append((placement, version))
            if progress:
                progress(index, len(tenants), placement, version)
        return done

    def tenant(self, tenant_id: str) -> TenantEvents:
        """The tenant's events; `InvalidTenantId` or `UnknownTenant` before anything else happens."""
        canonical = validate_tenant_id(tenant_id)
        events = self._tenants.get(canonical)
        if events is None:
            placement = self.registry.get(canonical)
            pool = self.pools.app(placement.dsn_name)
            events = TenantEvents(
                placement, pool, self.settings, blobs=self.payloads, keys=self.archive_keys, clock=self.clock
            )
            self._tenants[canonical] = events
        return events

    def feed(self, tenant_id: str) -> TenantFeed:
        """The tenant's change feed: sink checkpoints, health, dead letters, the publisher's session."""
        canonical = validate_tenant_id(tenant_id)
        feed = self._feeds.get(canonical)
        if feed is None:
            placement = self.registry.get(canonical)
            feed = TenantFeed(placement, self.pools.app(placement.dsn_name), self.pools.session(placement.dsn_name))
            self._feeds[canonical] = feed
        return feed

    def views(self, tenant_id: str) -> TenantViews:
        """The tenant's views: their checkpoints, the runner's session, reads of their tables."""
        canonical = validate_tenant_id(tenant_id)
        views = self._views.get(canonical)
        if views is None:
            placement = self.registry.get(canonical)
            pools = self.pools
            views = TenantViews(
                placement,
                pools.app(placement.dsn_name),
                pools.session(placement.dsn_name),
                lambda: pools.owner(placement.dsn_name),
                self.settings.app_role,
            )
            self._views[canonical] = views
        return views

    def replays(self, tenant_id: str) -> TenantReplays:
        """The tenant's replay jobs and their items."""
        canonical = validate_tenant_id(tenant_id)
        placement = self.registry.get(canonical)
        return TenantReplays(placement, self.pools.app(placement.dsn_name), self.settings)

    def alerts(self, tenant_id: str) -> TenantAlerts:
        """The tenant's alert incidents and notifications outbox."""
        canonical = validate_tenant_id(tenant_id)
        placement = self.registry.get(canonical)
        return TenantAlerts(placement, self.pools.app(placement.dsn_name), self.settings)

    def tenants(self) -> list[TenantPlacement]:
        return self.registry.all()

    def ensure_partitions_for(
        self, placement: TenantPlacement, months_ahead: int | None = None, now: datetime | None = None
    ) -> list[str]:
        ahead = self.settings.partitions_ahead if months_ahead is None else months_ahead
        # The application role may: each partition is made by the schema's SECURITY DEFINER ensure_partition.
        return run(
            self.pools.app(placement.dsn_name), lambda conn: ensure_partitions(conn, placement.schema_name, ahead, now)
        )

    def ensure_partitions(self, months_ahead: int | None = None) -> dict[str, list[str]]:
        """For every tenant: the current month and the next `months_ahead` (setting by default). One catalog
        query per database finds the months missing; only those are created. Returns the partitions created
        (made or found made by a racing process), by tenant; tenants with nothing missing are left out."""
        ahead = self.settings.partitions_ahead if months_ahead is None else months_ahead
        by_dsn: dict[str, list[TenantPlacement]] = {}
        for placement in self.registry.all():
            by_dsn.setdefault(placement.dsn_name, []).append(placement)
        created: dict[str, list[str]] = {}
        for dsn_name, placements in by_dsn.items():
            tenant_of = {p.schema_name: p.tenant_id for p in placements}

            def upkeep(conn: psycopg.Connection[Any], tenant_of: dict[str, str] = tenant_of) -> None:
                for schema, months in months_missing(conn, list(tenant_of), ahead).items():
                    created[tenant_of[schema]] = [create_partition_for(conn, schema, m) for m in months]

            run(self.pools.app(dsn_name), upkeep)
        return created

    def oldest_writing_transaction(self, dsn_name: str = "default") -> WritingTransaction | None:
        """The oldest open transaction holding an xid on that database's server: until it ends, no
        tenant's feed there passes it. The application role sees every session's transaction through
        pg_read_all_stats (granted by the migrations where the owner may)."""
        return run(self.pools.app(dsn_name), oldest_writing_transaction)

    def partitions(self, tenant_id: str) -> list[str]:
        placement = self.registry.get(validate_tenant_id(tenant_id))
        return run(self.pools.app(placement.dsn_name), lambda conn: list_partitions(conn, placement.schema_name))
