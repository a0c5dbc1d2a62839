"""The app's own database login, before any event table: `eventstore entra-principal` makes the login of a
Microsoft Entra principal (the Function App's managed identity) as the server's Entra administrator, as Azure
Database for PostgreSQL requires: only an Entra administrator connected to the `postgres` database may call
`pgaadauth_create_principal_with_oid`. (`EventStore.grant_login`, as the owner, then gives it its roles.)

deploy.sh runs it with the signed-in user's token (`az account get-access-token --resource-type oss-rdbms`) as
`PGPASSWORD`, then `eventstore grant-login` as the owner, so a deployment with `databaseLogin=entra` needs no
step by hand. Idempotent: an existing login is left as it is."""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def create_principal(admin_dsn: str, login: str, object_id: str) -> bool:
    """Create the login `login` for the Entra service principal `object_id` unless it exists; True if made.
    `admin_dsn` is an Entra administrator's connection to the server's `postgres` database."""
    with psycopg.connect(make_conninfo(admin_dsn, dbname="postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone():
            return False
        # Not an administrator, no MFA claim required: a service's login ('service').
        conn.execute(
            "SELECT * FROM pgaadauth_create_principal_with_oid(%s, %s, 'service', false, false)", (login, object_id)
        )
        return True


def conninfo_with(dsn: str, **changes: str) -> str:
    """`dsn` with some of its parts replaced (host, port, user, dbname...): the same login elsewhere."""
    return make_conninfo(dsn, **changes)


def conninfo_parts(dsn: str) -> dict[str, str]:
    """The parts of a DSN (URL or key=value), as libpq reads them."""
    return {key: str(value) for key, value in conninfo_to_dict(dsn).items() if value is not None}
