"""Monthly partitions of `events`: created ahead of time, and on demand when a month has none."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from eventstore.store.schema import ENSURE_PARTITION, EVENTS, table


def _months(start: datetime, count: int) -> list[datetime]:
    first = datetime(start.year, start.month, 1, tzinfo=UTC)
    out = []
    for offset in range(count):
        year, month = divmod(first.month - 1 + offset, 12)
        out.append(first.replace(year=first.year + year, month=month + 1))
    return out


def create_partition_for(conn: psycopg.Connection[Any], schema: str, at: datetime | None) -> str:
    """Create the partition holding `at` (default: the database's now()); returns its name."""
    row = conn.execute(
        sql.SQL("SELECT {}(coalesce(%s::timestamptz, now()))").format(table(schema, ENSURE_PARTITION)),
        (at,),
    ).fetchone()
    assert row is not None
    return str(row[0])


def ensure_partitions(
    conn: psycopg.Connection[Any], schema: str, months_ahead: int, now: datetime | None = None
) -> list[str]:
    """Make sure the current month and the next `months_ahead` have partitions. Idempotent, concurrent-safe."""
    if now is None:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        now = row[0]
    assert now is not None
    return [create_partition_for(conn, schema, month) for month in _months(now.astimezone(UTC), months_ahead + 1)]


def list_partitions(conn: psycopg.Connection[Any], schema: str) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname",
        (table(schema, EVENTS).as_string(None),),
    ).fetchall()
    return [str(r[0]) for r in rows]


def partition_name(month: datetime) -> str:
    """The name `ensure_partition` gives the month's partition (`events_2026m12`)."""
    return f"events_{month.year:04d}m{month.month:02d}"


def months_missing(
    conn: psycopg.Connection[Any], schemas: list[str], months_ahead: int, now: datetime | None = None
) -> dict[str, list[datetime]]:
    """For each of `schemas`, the months (current and `months_ahead` after it) that have no partition yet:
    one catalog query for all of them, so that the daily upkeep of 1,000 tenants whose partitions exist
    costs one statement, not one per tenant and month."""
    if now is None:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        now = row[0]
    assert now is not None
    wanted = _months(now.astimezone(UTC), months_ahead + 1)
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
        " JOIN pg_class AS p ON p.oid = i.inhparent JOIN pg_namespace AS n ON n.oid = p.relnamespace"
        " WHERE p.relname = %s AND n.nspname = ANY(%s)",
        (EVENTS, schemas),
    ).fetchall()
    present: dict[str, set[str]] = {}
    for schema, name in rows:
        present.setdefault(str(schema), set()).add(str(name))
    missing = {schema: [m for m in wanted if partition_name(m) not in present.get(schema, set())] for schema in schemas}
    return {schema: months for schema, months in missing.items() if months}
