"""Fixtures: a real PostgreSQL for every test.

`EVENTSTORE_TEST_DATABASE_URL` names a server to use; without it an embedded PostgreSQL (pgserver) is
started, so the suite passes on a machine with no server. Either way the session works in a database
of its own, created here and dropped at the end.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from eventstore import EventStore, Settings, TenantEvents


def random_tenant_id() -> str:
    """A Marain-shaped client tenant id: two levels of 32 lowercase hex characters."""
    return secrets.token_hex(32)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    url = os.environ.get("EVENTSTORE_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from eventstore.local.postgres import EmbeddedPostgres

    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="eventstore-test-pg-")))
    try:
        yield server.dsn
    finally:
        server.stop()


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    name = f"eventstore_test_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, pool_max_size=12)


@pytest.fixture(scope="session")
def store(settings: Settings) -> Iterator[EventStore]:
    with EventStore(settings) as event_store:
        yield event_store


@pytest.fixture
def tenant(store: EventStore) -> TenantEvents:
    """A freshly onboarded tenant of its own for each test."""
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    return store.tenant(tenant_id)


@pytest.fixture
def owner_conn(database_url: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A connection as the database owner (not the application role), for inspecting what is stored."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def app_conn(database_url: str, settings: Settings) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A connection as the application role, as the functions connect."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(settings.app_role)))
        yield conn
