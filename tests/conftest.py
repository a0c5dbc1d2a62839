"""Fixtures: a real PostgreSQL for every test.

`EVENTSTORE_TEST_DATABASE_URL` names a server to use; without it an embedded PostgreSQL (pgserver) is
started, so the suite passes on a machine with no server. Either way the session works in a database
of its own, created here and dropped at the end.
"""

from __future__ import annotations

import contextlib
import json
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
from eventstore_local.host.process import HostProcess
from eventstore_local.samples import expense_claim_walk
from tests.helpers import ARCHIVE_KEY, CONTINUATION_KEY, PROJECT_ROOT, REPLAY_ROUTER_QUEUE, random_tenant_id, settle


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    url = os.environ.get("EVENTSTORE_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from eventstore_local.standins.postgres import EmbeddedPostgres

    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="eventstore-test-pg-")))
    try:
        yield server.dsn
    finally:
        server.stop()


@contextlib.contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new database on the server, dropped after (whoever is still connected)."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    with scratch_database(server_url, "eventstore_test") as url:
        yield url


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
def walked(store: EventStore, tenant: TenantEvents) -> TenantEvents:
    """A fresh tenant with the Marain expense-claim walk recorded (`eventstore_local.samples`): the audit
    stream's messages and three instances' outcomes, one append per step."""
    for step in expense_claim_walk():
        tenant.append(step.stream_id, [step.event])
    settle(store, tenant)
    return tenant


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


@pytest.fixture(scope="session")
def azurite() -> Iterator[Any]:
    """A real Azurite (npm, pinned in package.json) on free ports, for Blob payloads and queues."""
    from eventstore_local.standins.azurite import Azurite

    emulator = Azurite().start()
    try:
        yield emulator
    finally:
        emulator.stop()


FEED_KEY = "test-feed-key"
"""The local host's token key, so that tests can build the document it serves in-process."""


@pytest.fixture
def own_database(server_url: str) -> Iterator[str]:
    """A database of the test's own, dropped after it: for a host of the test's own, since one deployment is
    one database (the suite's host drives every tenant it finds marked in the suite's database, and a second
    host's timers would visit every other test's tenants)."""
    with scratch_database(server_url, "eventstore_own") as url:
        yield url


@pytest.fixture
def own_azurite() -> Iterator[Any]:
    """An Azurite of the test's own: on the shared one a second host's queue triggers would take the suite's
    host's messages (the ingest and replay queues have fixed names)."""
    from eventstore_local.standins.azurite import Azurite

    emulator = Azurite().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def feed_grid() -> Iterator[Any]:
    """The Event Grid stand-in the local host's change feed publishes to."""
    from eventstore_local.standins.eventgrid import EventGridStandIn

    with EventGridStandIn(key=FEED_KEY) as grid:
        yield grid


@pytest.fixture(scope="session")
def api_url(database_url: str, azurite: Any, feed_grid: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """function_app.py served by the project's local Functions host over real HTTP, with the test database
    and Azurite; queue retries shortened so poison-queue tests take seconds, not minutes. Its change feed
    goes to `feed_grid` on the nudge alone: the feed's and the views' timers are set to once a day, so that
    the host never takes the locks of tenants whose feed or views in-process tests run themselves (reads
    of a view bring it up to date on their own)."""
    root = PROJECT_ROOT
    folder = tmp_path_factory.mktemp("host")
    host_json = json.loads((root / "host.json").read_text())
    host_json["extensions"]["queues"].update(visibilityTimeout="00:00:01", maxPollingInterval="00:00:00.500")
    (folder / "host.json").write_text(json.dumps(host_json))
    env = {
        "EVENTSTORE_DATABASE_URL": database_url,
        "AzureWebJobsStorage": azurite.connection_string,
        "EVENTSTORE_EVENTGRID_ENDPOINT": feed_grid.endpoint,
        "EVENTSTORE_EVENTGRID_KEY": FEED_KEY,
        "EVENTSTORE_FEED_SCHEDULE": "0 0 0 * * *",
        "EVENTSTORE_VIEWS_SCHEDULE": "0 0 0 * * *",
        "EVENTSTORE_ALERTS_SCHEDULE": "0 0 0 * * *",
        "EVENTSTORE_WEEKLY_SCHEDULE": "0 0 0 1 1 *",
        # Replays go to a queue of their own that the replay tests read (no engine runs in the suite's host).
        "EVENTSTORE_REPLAY_ROUTER__QUEUE": REPLAY_ROUTER_QUEUE,
        "EVENTSTORE_REPLAY_SCHEDULE": "*/1 * * * * *",
        "EVENTSTORE_REPLAY_CONFIRM_OVER": "2",
        "EVENTSTORE_CONTINUATION_KEY": CONTINUATION_KEY,
        "EVENTSTORE_ARCHIVE_KEY": ARCHIVE_KEY,
        "EVENTSTORE_RETENTION_SCHEDULE": "0 0 0 1 1 *",
        "EVENTSTORE_CONSOLE_ACCESS": "open",
    }
    options = ["--no-engine", "--alerts-port", "-1", "--host-json", str(folder / "host.json")]
    # The suite's own EVENTSTORE_* (the test database's URL) pass through, as they always have.
    with HostProcess(folder, env, options, leave_out=()) as host:
        yield host.api
