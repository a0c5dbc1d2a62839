from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg import sql

from eventstore import EventStore
from eventstore.store.migrations import latest_version, migrations
from tests.helpers import random_tenant_id


def test_every_migration_is_numbered_and_has_a_note() -> None:
    for kind in ("control", "tenant"):
        found = migrations(kind)
        assert [m.version for m in found] == list(range(1, len(found) + 1))
        assert all(m.note for m in found)


def test_concurrent_onboarding_of_one_tenant_migrates_once(
    store: EventStore, owner_conn: psycopg.Connection[tuple[Any, ...]]
) -> None:
    tenant_id = random_tenant_id()
    with ThreadPoolExecutor(4) as pool:
        placements = list(pool.map(lambda _: store.onboard_tenant(tenant_id), range(4)))
    assert len(set(placements)) == 1
    schema = placements[0].schema_name
    rows = owner_conn.execute(
        sql.SQL("SELECT version FROM {} ORDER BY version").format(sql.Identifier(schema, "schema_migrations"))
    ).fetchall()
    assert [r[0] for r in rows] == list(range(1, latest_version("tenant") + 1))


def test_migrate_brings_every_tenant_to_the_latest_version(store: EventStore) -> None:
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    done = dict((p.tenant_id, v) for p, v in store.migrate(every=True))
    assert done[tenant_id] == latest_version("tenant")


def test_migrate_resumes_with_the_tenants_not_yet_current_and_skips_the_rest(
    store: EventStore, owner_conn: psycopg.Connection[tuple[Any, ...]]
) -> None:
    behind, current = random_tenant_id(), random_tenant_id()
    for tenant_id in (behind, current):
        store.onboard_tenant(tenant_id)
    # As a run cut off before it reached `behind` leaves it: recorded at an older version.
    registry = sql.Identifier(store.control_schema, "tenants")
    owner_conn.execute(sql.SQL("UPDATE {} SET schema_version = 1 WHERE tenant_id = %s").format(registry), (behind,))
    seen: list[tuple[int, int, str]] = []
    done = store.migrate(lambda i, n, p, v: seen.append((i, n, p.tenant_id)))
    migrated = [p.tenant_id for p, _ in done]
    assert behind in migrated and current not in migrated
    assert seen[-1][:2] == (len(done), len(done))
    assert store.registry.versions()[behind] == latest_version("tenant")
    assert store.migrate() == []  # nothing left: a run with nothing to do reads the registry only


def test_concurrent_control_migrations_never_collide(settings: Any) -> None:
    """Processes starting at once (the partitions timer runs on startup while the first onboarding arrives)
    all migrate the control schema and grant on it: none of them may fail ("tuple concurrently updated"
    from two GRANTs on one catalog row was a 500 on a fresh database)."""
    stores = [EventStore(settings) for _ in range(8)]
    try:
        for _ in range(20):
            with ThreadPoolExecutor(len(stores)) as pool:
                versions = list(pool.map(lambda s: s.migrate_control(), stores))
            assert set(versions) == {latest_version("control")}
    finally:
        for each in stores:
            each.close()
