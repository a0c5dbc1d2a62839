"""`eventstore entra-principal` and `eventstore grant-login` on a server of this module's own, with a stand-in
for Azure's `pgaadauth_create_principal_with_oid` (the Entra extension exists only in Azure): the login is made
once, granted the application roles, and its sessions start as the application role, so it runs the app with no
SET ROLE (as behind PgBouncer) and without any owner right."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from bench.reliability import PrivatePostgres
from eventstore import EventStore, Settings
from eventstore.errors import InvalidInput
from eventstore.store import create_principal
from eventstore_local.cli import main

# What Azure's function does, as far as this command relies on it: a LOGIN role named as asked.
STAND_IN = """
CREATE FUNCTION pgaadauth_create_principal_with_oid(name text, oid text, kind text, admin bool, mfa bool)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF kind <> 'service' OR admin OR mfa THEN RAISE EXCEPTION 'unexpected principal options'; END IF;
    EXECUTE format('CREATE ROLE %I LOGIN', name);
    EXECUTE format('COMMENT ON ROLE %I IS %L', name, 'entra oid ' || oid);
    RETURN 'Created role for ' || name;
END $$;
"""


@pytest.fixture(scope="module")
def server() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as pg:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute(STAND_IN)
            conn.execute("CREATE DATABASE eventstore")
        yield pg


def test_the_identitys_login_is_made_once_then_runs_the_app_as_the_application_role(
    server: PrivatePostgres, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    owner_dsn = make_conninfo(server.dsn, dbname="eventstore")
    assert create_principal(owner_dsn, "func-es-prod", "1111-2222") is True  # connects to postgres itself
    assert create_principal(owner_dsn, "func-es-prod", "1111-2222") is False
    with psycopg.connect(server.dsn) as conn:
        comment = conn.execute(
            "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = 'func-es-prod'"
        )
        assert comment.fetchone() == ("entra oid 1111-2222",)

    monkeypatch.setenv("EVENTSTORE_DATABASE_URL", owner_dsn)
    assert main(["migrate"]) == 0
    assert main(["grant-login", "func-es-prod"]) == 0
    assert main(["grant-login", "func-es-prod"]) == 0  # again: nothing changes, nothing fails
    assert "func-es-prod runs the app" in capsys.readouterr().out

    login = make_conninfo(owner_dsn, user="func-es-prod")
    with psycopg.connect(login) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("eventstore_app",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE SCHEMA es_not_allowed")
    with EventStore(Settings(app_database_url=login, direct_database_url=login)) as app:
        assert app.tenants() == []  # the registry, read as the application role, behind a "pooler" check


def test_grant_login_refuses_a_missing_login_and_a_superuser(server: PrivatePostgres) -> None:
    with EventStore(Settings(database_url=make_conninfo(server.dsn, dbname="eventstore"))) as owner:
        with pytest.raises(InvalidInput, match="no login"):
            owner.grant_login("nobody-here")
        with pytest.raises(InvalidInput, match="superuser"):
            owner.grant_login("postgres")
