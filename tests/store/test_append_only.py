from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from eventstore import Settings, TenantEvents
from eventstore.store.partitions import list_partitions
from tests.helpers import event

Conn = psycopg.Connection[tuple[Any, ...]]


def statements(schema: str) -> list[sql.Composed]:
    events = sql.Identifier(schema, "events")
    ids = sql.Identifier(schema, "event_ids")
    return [
        sql.SQL("UPDATE {} SET event_type = 'Error'").format(events),
        sql.SQL("UPDATE {} SET payload = 'x'::bytea").format(events),
        sql.SQL("DELETE FROM {}").format(events),
        sql.SQL("TRUNCATE {}").format(events),
        sql.SQL("UPDATE {} SET sequence_number = 99").format(ids),
        sql.SQL("DELETE FROM {}").format(ids),
        sql.SQL("TRUNCATE {}").format(ids),
        sql.SQL("DELETE FROM {}").format(sql.Identifier(schema, "streams")),
        sql.SQL("TRUNCATE {}").format(sql.Identifier(schema, "streams")),
    ]


def stored(conn: Conn, schema: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        sql.SQL("SELECT event_id, event_type, payload FROM {} ORDER BY global_position").format(
            sql.Identifier(schema, "events")
        )
    ).fetchall()


def test_application_role_may_not_change_or_remove_events(
    tenant: TenantEvents, app_conn: Conn, owner_conn: Conn
) -> None:
    tenant.append("s", [event(), event()])
    schema = tenant.placement.schema_name
    before = stored(owner_conn, schema)
    for statement in statements(schema):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            app_conn.execute(statement)
    partition = list_partitions(owner_conn, schema)[0]
    for ddl in ("DROP TABLE {}", "ALTER TABLE {} DISABLE TRIGGER ALL"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_conn.execute(sql.SQL(ddl).format(sql.Identifier(schema, "events")))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(schema, partition)))
    assert stored(owner_conn, schema) == before


def test_triggers_refuse_changes_even_for_the_owner(tenant: TenantEvents, owner_conn: Conn) -> None:
    tenant.append("s", [event(), event()])
    schema = tenant.placement.schema_name
    before = stored(owner_conn, schema)
    for statement in statements(schema):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            owner_conn.execute(statement)
    partitions = list_partitions(owner_conn, schema)
    assert partitions
    for name in partitions:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            owner_conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(schema, name)))
    # Row triggers reach the partition that holds the rows, addressed directly.
    (current,) = owner_conn.execute(
        sql.SQL("SELECT DISTINCT tableoid::regclass::text FROM {}").format(sql.Identifier(schema, "events"))
    ).fetchall()
    for template in ("DELETE FROM {}", "UPDATE {} SET event_type = 'Error'"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            owner_conn.execute(sql.SQL(template.replace("{}", str(current[0]))))
    assert stored(owner_conn, schema) == before


def test_the_maintenance_role_is_the_only_way_through(
    tenant: TenantEvents, app_conn: Conn, owner_conn: Conn, settings: Settings
) -> None:
    tenant.append("s", [event(), event()])
    schema = tenant.placement.schema_name
    events = sql.Identifier(schema, "events")
    # The setting that used to open the triggers opens nothing now, for the application role or the owner.
    for conn in (app_conn, owner_conn):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("SET LOCAL eventstore.maintenance = 'on'")
            conn.execute(sql.SQL("DELETE FROM {} WHERE sequence_number = 2").format(events))
    assert len(stored(owner_conn, schema)) == 2
    # The application role is not a member of the maintenance role: it cannot take it.
    member = owner_conn.execute(
        "SELECT pg_has_role(%s, %s, 'MEMBER')", (settings.app_role, settings.maintenance_role)
    ).fetchone()
    assert member == (False,)
    # Run as the maintenance role, a change goes through; the role was transaction-local.
    with owner_conn.transaction():
        owner_conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(settings.maintenance_role)))
        owner_conn.execute(sql.SQL("UPDATE {} SET payload_json = NULL WHERE sequence_number = 2").format(events))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        owner_conn.execute(sql.SQL("DELETE FROM {}").format(events))
    assert len(stored(owner_conn, schema)) == 2


def test_stream_versions_only_move_forward(tenant: TenantEvents, app_conn: Conn, owner_conn: Conn) -> None:
    """A version that went back would hand out a sequence number twice: refused for every role."""
    tenant.append("s", [event(), event()])
    streams = sql.Identifier(tenant.placement.schema_name, "streams")
    for conn in (app_conn, owner_conn):
        for change in ("SET version = version - 1", "SET version = version", "SET stream_id = 'renamed'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(sql.SQL("UPDATE {} " + change).format(streams))
    assert tenant.append("s", [event()]).sequence_numbers == (3,)
    assert [e.sequence_number for e in tenant.read_stream("s")] == [1, 2, 3]
