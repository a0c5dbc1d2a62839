"""The reliability suite's dependencies: a PostgreSQL and an Azurite of its own (bench/reliability.py's
`PrivatePostgres` and `restartable_azurite`), so that it can stop, restart and kill them; the machine's shared
PostgreSQL is never touched. One local host (`python -m eventstore_local host`, as `bench.reliability`
starts it) serves the scenarios that keep it running, with the change feed on, publishing to an Event Grid
stand-in; the scenario that kills a host starts its own.

What the scenarios measure (recovery time, counts) is printed at the end of the run, never asserted: the
tests assert behaviour only (docs/reliability.md, "The reliability suite").
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from azure.storage.queue import QueueClient
from psycopg import sql

from bench.reliability import Answer, Api, OutageHost, PrivatePostgres, restartable_azurite
from eventstore.functions.ingest import MESSAGES_QUEUE
from eventstore_local.standins.azurite import Azurite
from eventstore_local.standins.eventgrid import EventGridStandIn

# EVENTSTORE_DEPENDENCY_TIMEOUT_SECONDS of the shared host: short, so an outage is felt (and over) in
# seconds, yet long enough that 16 clients on a busy 2-core machine never wait that long for a connection.
TIMEOUT = 3.0
RETRY_AFTER = "1"
"""The host's Retry-After: the scenarios' clients honour it, so a short one keeps them busy during an outage."""
BOUND = 3 * TIMEOUT
"""A client's timeout: an answer must come before it (status 0 means none did), as in tests/http/test_outages.py."""
GRID_KEY = "reliability-grid-key"
HOST_SETTINGS = {"EVENTSTORE_ALERTS_ENABLED": "false"}
"""Settings of every host the suite starts. Alerts are not what it tests, and with them on `OutageHost` starts
the local alert receivers on their fixed ports (7075-7078), which a second host on the machine (another test
run, a benchmark) then cannot have: it would not start."""


@dataclass(frozen=True)
class Environment:
    """What the scenarios that keep one host running share: its PostgreSQL, Azurite, feed sink and the host."""

    pg: PrivatePostgres
    azurite: Azurite
    grid: EventGridStandIn
    host: OutageHost


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as pg:
        yield pg


@pytest.fixture(scope="session")
def shared_environment(private_pg: PrivatePostgres) -> Iterator[Environment]:
    env = {
        **HOST_SETTINGS,
        "EVENTSTORE_DEPENDENCY_TIMEOUT_SECONDS": str(TIMEOUT),
        "EVENTSTORE_RETRY_AFTER_SECONDS": RETRY_AFTER,
        "EVENTSTORE_FEED_ENABLED": "true",
        "EVENTSTORE_EVENTGRID_KEY": GRID_KEY,
    }
    with (
        restartable_azurite() as azurite,
        EventGridStandIn(key=GRID_KEY) as grid,
        OutageHost(
            private_pg.dsn, azurite.connection_string, env={**env, "EVENTSTORE_EVENTGRID_ENDPOINT": grid.endpoint}
        ) as host,
    ):
        yield Environment(private_pg, azurite, grid, host)


@pytest.fixture
def environment(shared_environment: Environment) -> Iterator[Environment]:
    """The shared environment, whose PostgreSQL and Azurite are running again after each test (one that
    failed mid-outage leaves the next a working environment)."""
    yield shared_environment
    if not (shared_environment.pg.data / "postmaster.pid").exists():
        shared_environment.pg.start()
    if not shared_environment.azurite.running:
        shared_environment.azurite.start()


def onboarded(host: OutageHost) -> Api:
    """A tenant of the test's own, onboarded through the host."""
    api = Api(host)
    answer = api.onboard_retrying()
    assert answer.status in (200, 201), f"{answer.status}: {answer.body[:300]!r}\n{host.log_tail()}"
    return api


@contextlib.contextmanager
def database_of_its_own(pg: PrivatePostgres) -> Iterator[str]:
    """A new database on the private server (one deployment is one database), dropped after."""
    name = f"reliability_{secrets.token_hex(4)}"
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(sql.Identifier(name)))
    try:
        yield f"postgresql://postgres@127.0.0.1:{pg.port}/{name}"
    finally:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def messages_queue(azurite: Azurite) -> QueueClient:
    return QueueClient.from_connection_string(azurite.connection_string, MESSAGES_QUEUE)


def enqueue(queue: QueueClient, body: bytes, *, visibility_timeout: int | None = None) -> None:
    """As the engine's front door sends: base64, which host.json's messageEncoding says the host expects."""
    queue.send_message(base64.b64encode(body).decode("ascii"), visibility_timeout=visibility_timeout)


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def audit_events(api: Api) -> list[dict[str, Any]]:
    """Every event of the tenant, through the audit search (paged with its continuation)."""
    events: list[dict[str, Any]] = []
    path = f"/api/tenants/{api.tenant_id}/audit?limit=1000"
    while True:
        answer = api.host.request("GET", path, timeout=60)
        assert answer.status == 200, f"{answer.status}: {answer.body[:300]!r}"
        page = answer.json()
        events += page["events"]
        if not page["continuation"]:
            return events
        path = f"/api/tenants/{api.tenant_id}/audit?limit=1000&continuation={quote(page['continuation'])}"


def assert_unavailable(answer: Answer) -> None:
    """A 503 problem with the host's Retry-After: what a client of a dependency outage must see."""
    assert answer.status == 503, f"{answer.status} after {answer.seconds:.1f} s: {answer.body[:300]!r}"
    assert answer.headers.get("retry-after") == RETRY_AFTER, f"Retry-After {answer.headers.get('retry-after')!r}"
    assert answer.headers.get("content-type", "").startswith("application/problem+json"), answer.headers


# --- the figures: collected by the tests, printed once at the end ---------------------------------------

_FIGURES = pytest.StashKey[dict[str, dict[str, Any]]]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A dict the test fills with what it measured, printed under its name in the run's summary."""
    collected = request.config.stash.setdefault(_FIGURES, {})
    return collected.setdefault(request.node.name, {})


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    collected = config.stash.get(_FIGURES, {})
    if any(collected.values()):
        terminalreporter.section("reliability figures")
        for name, measured in collected.items():
            if measured:
                terminalreporter.write_line(f"{name}: {json.dumps(measured)}")
