"""`EVENTSTORE_DATABASE_AUTH=entra` against a PostgreSQL that checks passwords: the app's login has none but
the token the managed identity endpoint (its stand-in) hands out, as on Azure, where the token is the password
of the identity's login. Each new pooled connection takes the credential's current token, so a pool that
reconnects after the token was renewed logs in with the new one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench.reliability import PrivatePostgres
from eventstore import EventStore, EventType, Settings, identity
from eventstore.errors import StoreUnavailable
from eventstore_local.standins.managed_identity import ManagedIdentityStandIn
from tests.helpers import event, random_tenant_id

LOGIN = "es_entra_login"
RESOURCE = identity.DATABASE_SCOPE.removesuffix("/.default")
FIRST, SECOND = "first-entra-token-value", "second-entra-token-value"


def set_password(owner_dsn: str, password: str) -> None:
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(LOGIN), sql.Literal(password)))


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, str]]:
    """(owner DSN, the app's login DSN without a password) on a server that checks that login's password."""
    with PrivatePostgres() as pg:
        hba = Path(pg.data) / "pg_hba.conf"
        hba.write_text(f"host all {LOGIN} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("CREATE DATABASE eventstore")
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(LOGIN), sql.Literal(FIRST)))
        owner = make_conninfo(pg.dsn, dbname="eventstore")
        with EventStore(Settings(database_url=owner)) as store:
            store.migrate_control()
            store.grant_login(LOGIN)
        yield owner, make_conninfo(owner, user=LOGIN)


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[ManagedIdentityStandIn]:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "prod")
    # Tokens due for renewal a second after they are issued (the credential renews 5 minutes before expiry).
    with ManagedIdentityStandIn(lifetime=301) as stand_in:
        for name, value in stand_in.environ().items():
            monkeypatch.setenv(name, value)
        identity.reset()
        try:
            yield stand_in
        finally:
            identity.reset()


def app_settings(login_dsn: str) -> Settings:
    return Settings(app_database_url=login_dsn, database_auth="entra", dependency_timeout_seconds=2)


def test_the_token_is_the_password_and_a_reconnecting_pool_takes_the_renewed_one(
    server: tuple[str, str], endpoint: ManagedIdentityStandIn
) -> None:
    owner_dsn, login_dsn = server
    set_password(owner_dsn, FIRST)
    endpoint.set_token(RESOURCE, FIRST)
    tenant_id = random_tenant_id()
    with EventStore(Settings(database_url=owner_dsn)) as owner:
        owner.onboard_tenant(tenant_id)
    with EventStore(app_settings(login_dsn)) as app:
        tenant = app.tenant(tenant_id)
        tenant.append("instance:a", [event({"n": 1}, EventType.STEP_COMPLETED)])
        assert endpoint.requests(RESOURCE) >= 1

        # The token is renewed (and the old one stops working), then every session of the app is ended.
        set_password(owner_dsn, SECOND)
        endpoint.set_token(RESOURCE, SECOND)
        time.sleep(1.5)  # past the first token's renewal time
        with psycopg.connect(owner_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (LOGIN,))
        tenant.append("instance:a", [event({"n": 2}, EventType.STEP_COMPLETED)])
        assert [e.sequence_number for e in tenant.read_stream("instance:a")] == [1, 2]
        assert SECOND in endpoint.issued(RESOURCE)


def test_without_the_token_the_login_is_refused_and_a_failing_endpoint_is_a_503(
    server: tuple[str, str], endpoint: ManagedIdentityStandIn
) -> None:
    owner_dsn, login_dsn = server
    set_password(owner_dsn, FIRST)
    endpoint.set_token(RESOURCE, FIRST)
    # The DSN has no password: only the token opens this login.
    with (
        EventStore(Settings(app_database_url=login_dsn, dependency_timeout_seconds=2)) as no,
        pytest.raises(StoreUnavailable),
    ):
        no.tenants()
    endpoint.fail(500)
    with EventStore(app_settings(login_dsn)) as app, pytest.raises(StoreUnavailable):
        app.tenants()
