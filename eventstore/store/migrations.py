"""Versioned, idempotent schema migrations from the numbered `.sql` files under `migrations/`.

Each file is `NNNN_name.sql` whose first line is `-- note: ...`. `{schema}`, `{schema_literal}`, `{app_role}`,
`{maintenance_role}` and `{maintenance_role_literal}` are filled in with `psycopg.sql`, so identifiers never
pass through string formatting.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import psycopg
from psycopg import sql

Kind = Literal["control", "tenant"]
_FILE = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    note: str
    text: str


@cache
def migrations(kind: Kind) -> tuple[Migration, ...]:
    folder = resources.files("eventstore.store").joinpath("migrations", kind)
    found = []
    for entry in folder.iterdir():
        match = _FILE.fullmatch(entry.name)
        if not match:
            continue
        text = entry.read_text(encoding="utf-8")
        first = text.splitlines()[0] if text else ""
        if not first.startswith("-- note: "):
            raise RuntimeError(f"migration {kind}/{entry.name} must start with '-- note: '")
        found.append(Migration(int(match.group(1)), entry.name, first.removeprefix("-- note: "), text))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{kind} migrations must be numbered 1..n without gaps")
    return tuple(found)


def latest_version(kind: Kind) -> int:
    return migrations(kind)[-1].version


def lock_migrations(conn: psycopg.Connection[tuple[Any, ...]], name: str) -> None:
    """Hold the migration lock `name` until the current transaction ends (others wait, then find nothing
    left to do)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 42))", (f"eventstore.migrate.{name}",))


def ensure_role(conn: psycopg.Connection[tuple[Any, ...]], role: str) -> None:
    """Create the role (the application's, the maintenance path's) if missing, and let the owner SET ROLE to
    it."""
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    if not exists:
        # Another process may create it between our check and our CREATE.
        with contextlib.suppress(psycopg.errors.DuplicateObject):
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    member = conn.execute("SELECT pg_has_role(current_user, %s, 'MEMBER')", (role,)).fetchone()
    if not (member and member[0]):
        conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))


def migrate(
    conn: psycopg.Connection[tuple[Any, ...]], kind: Kind, schema: str, app_role: str, maintenance_role: str
) -> int:
    """Bring `schema` to the latest `kind` version; safe to run concurrently. Returns the version."""
    ident = sql.Identifier(schema)
    with conn.transaction():
        # One migrator per schema at a time; the others wait, then find nothing left to do.
        lock_migrations(conn, schema)
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, note text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(ident)
        )
        row = conn.execute(
            sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_migrations").format(ident)
        ).fetchone()
        current = int(row[0]) if row else 0
        for migration in migrations(kind):
            if migration.version <= current:
                continue
            statement = sql.SQL(migration.text).format(
                schema=ident,
                schema_literal=sql.Literal(schema),
                app_role=sql.Identifier(app_role),
                maintenance_role=sql.Identifier(maintenance_role),
                maintenance_role_literal=sql.Literal(maintenance_role),
            )
            conn.execute(statement)
            conn.execute(
                sql.SQL("INSERT INTO {}.schema_migrations (version, name, note) VALUES (%s, %s, %s)").format(ident),
                (migration.version, migration.name, migration.note),
            )
            current = migration.version
    return current
