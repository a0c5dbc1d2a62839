"""The app as deployed on Azure: its own login (never the owner), and behind a real PgBouncer in transaction
pooling mode (Debian's package, as Azure's built-in one on port 6432), with the readers' sessions on a direct
connection. Both set-ups run against a private PostgreSQL of this module's own (TCP, which PgBouncer needs).

What each test guards:
- statements prepared on the server would break behind the pooler (`prepare_threshold=None`);
- a session lock taken through the pooler belongs to whichever server connection ran it (readers hold theirs
  on the direct connection);
- a SET ROLE through the pooler would switch one server connection only (the login starts as the application
  role instead, `eventstore grant-login`, and the pool checks it);
- the running app needs no owner role for anything it does on its own (appends, reads, views, the feed,
  partition upkeep, the timers' heads), and the owner's work asked of it is a clear `OwnerRequired`.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from azure.core.credentials import AzureKeyCredential
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench.reliability import PrivatePostgres
from eventstore import EventStore, EventType, Settings, instance_stream_id, query
from eventstore.errors import DuplicateEventId, OwnerRequired, StoreUnavailable
from eventstore.feed.publisher import FeedPublisher
from eventstore.feed.sinks import EventGridSink
from eventstore.http.problems import kind_of
from eventstore.models import START
from eventstore.store.pending_work import PendingWork
from eventstore.views import INSTANCES, ViewRunner
from eventstore.views.instances import list_instances
from eventstore_local.samples import expense_claim_walk
from eventstore_local.standins.eventgrid import EventGridStandIn
from eventstore_local.standins.pgbouncer import PgBouncer, pgbouncer_binary
from tests.helpers import event, random_tenant_id, settle

LOGIN = "es_app_login"
BARE_LOGIN = "es_bare_login"  # a login nobody ran grant-login for
KEY = "pgbouncer-feed-key"

pytestmark = [
    pytest.mark.timeout(240),
    # CI requires it (EVENTSTORE_REQUIRE_PGBOUNCER=1 in .ci/run): there a missing pgbouncer fails, not skips.
    pytest.mark.skipif(
        pgbouncer_binary() is None and not os.environ.get("EVENTSTORE_REQUIRE_PGBOUNCER"),
        reason="pgbouncer is not installed (./scripts/bootstrap installs Debian's package)",
    ),
]


class Deployment:
    """One private server with an owner, the app's login, and PgBouncer in front of it."""

    def __init__(self, server: PrivatePostgres, bouncer: PgBouncer) -> None:
        self.owner_dsn = make_conninfo(server.dsn, dbname="eventstore")
        self.login_dsn = make_conninfo(self.owner_dsn, user=LOGIN)
        self.pooled_dsn = bouncer.dsn(self.login_dsn)
        self.bouncer = bouncer

    def owner_settings(self) -> Settings:
        return Settings(database_url=self.owner_dsn, pool_max_size=4)

    def direct_app(self) -> Settings:
        """The app with its own login, straight to the server, and no owner DSN."""
        return Settings(app_database_url=self.login_dsn, pool_max_size=8)

    def pooled_app(self, **more: Any) -> Settings:
        """The app with its own login through the transaction pooler, its readers direct, no owner DSN."""
        return Settings(app_database_url=self.pooled_dsn, direct_database_url=self.login_dsn, pool_max_size=12, **more)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    with PrivatePostgres() as server:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE eventstore")
            for login in (LOGIN, BARE_LOGIN):
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login)))
        # Few server connections for many clients: every statement of a client may land on another one.
        with PgBouncer(server.dsn, ("postgres", LOGIN, BARE_LOGIN), pool_size=3) as bouncer:
            deployment = Deployment(server, bouncer)
            with EventStore(deployment.owner_settings()) as owner:
                owner.migrate_control()
                owner.grant_login(LOGIN)
            yield deployment


@pytest.fixture(scope="module")
def owner(deployment: Deployment) -> Iterator[EventStore]:
    with EventStore(deployment.owner_settings()) as store:
        yield store


@pytest.fixture(params=["direct", "pooled"])
def app(request: pytest.FixtureRequest, deployment: Deployment) -> Iterator[EventStore]:
    settings = deployment.direct_app() if request.param == "direct" else deployment.pooled_app()
    with EventStore(settings) as store:
        yield store


@pytest.fixture
def tenant_id(owner: EventStore) -> str:
    tenant_id = random_tenant_id()
    owner.onboard_tenant(tenant_id)  # from the command line: the app cannot
    return tenant_id


def test_appends_and_reads_from_many_threads_through_the_pooler(app: EventStore, tenant_id: str) -> None:
    tenant = app.tenant(tenant_id)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for n in range(25):  # the same statements, again and again: psycopg would prepare them after 5
                tenant.append(f"instance:w{worker}", [event({"worker": worker, "n": n}, EventType.STEP_COMPLETED)])
                assert len(tenant.read_stream(f"instance:w{worker}")) == n + 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    settle(app, tenant)
    for worker in range(8):
        stored = tenant.read_stream(f"instance:w{worker}")
        assert [e.sequence_number for e in stored] == list(range(1, 26))
        assert [json.loads(e.payload or b"")["n"] for e in stored] == list(range(25))
    assert len(tenant.read_all(START, limit=1000).events) == 200


def test_the_app_runs_as_the_application_role_and_cannot_reach_the_owner(app: EventStore, tenant_id: str) -> None:
    with app.pools.app("default").connection() as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("eventstore_app",)
        conn.execute("RESET ROLE")  # as far as a compromised app could go: its own login
        assert conn.execute("SELECT current_user").fetchone() in ((LOGIN,), ("eventstore_app",))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE SCHEMA es_stolen")
    with pytest.raises(OwnerRequired) as refused:
        app.onboard_tenant(random_tenant_id())
    assert kind_of(refused.value).status == 403  # not a 503: asking again cannot help
    with pytest.raises(OwnerRequired):
        app.migrate()


def test_a_login_without_the_default_role_is_refused_behind_the_pooler(deployment: Deployment) -> None:
    bare = make_conninfo(deployment.login_dsn, user=BARE_LOGIN)
    settings = Settings(
        app_database_url=deployment.bouncer.dsn(bare), direct_database_url=bare, dependency_timeout_seconds=2
    )
    with EventStore(settings) as store, pytest.raises(StoreUnavailable):
        store.tenants()


def test_the_views_and_the_timers_heads_need_no_owner(app: EventStore, tenant_id: str) -> None:
    tenant = app.tenant(tenant_id)
    walk = expense_claim_walk()
    for step in walk:
        tenant.append(step.stream_id, [step.event])
    settle(app, tenant)
    [run] = ViewRunner(app, [INSTANCES]).run_tenant(tenant_id)
    assert run.locked and run.caught_up and run.applied == len(walk)
    states = list(list_instances(app.views(tenant_id), limit=100))
    assert states and all(s == query.rebuild_state(tenant, s.workflow_instance_id) for s in states)
    heads = PendingWork(app.pools, 300).heads("default")
    placement = tenant.placement
    assert heads.by_schema[placement.schema_name] == tenant.read_all(START, limit=1000).events[-1].global_position
    assert heads.quiet  # the application role sees other sessions' transactions (pg_read_all_stats)
    assert app.ensure_partitions_for(placement, 2)  # partition upkeep: ensure_partition is SECURITY DEFINER
    assert app.oldest_writing_transaction() is None


def test_the_feed_publishes_everything_once_and_holds_its_lock_on_a_direct_session(
    app: EventStore, tenant_id: str
) -> None:
    tenant = app.tenant(tenant_id)
    ids = []
    for n in range(30):
        new = event({"n": n}, EventType.STEP_COMPLETED)
        tenant.append(instance_stream_id(f"i{n % 3}"), [new])
        ids.append(str(new.event_id))
    settle(app, tenant)
    with EventGridStandIn(key=KEY) as grid:
        sink = EventGridSink(grid.endpoint, AzureKeyCredential(KEY), timeout=5.0)
        publisher = FeedPublisher(app, [sink], settings=app.settings.model_copy(update={"feed_batch_events": 7}))
        run = publisher.publish_tenant(tenant_id)
        again = publisher.publish_tenant(tenant_id)  # the lock was released: a second run gets it
        assert run.locked and again.locked and run.published == 30 and again.published == 0
        assert [e["id"] for e in grid.events] == ids
    feed = app.feed(tenant_id)
    with feed.session("probe") as session:
        assert session is not None
        pid = session._conn.info.backend_pid
        with psycopg.connect(make_conninfo(app.settings.direct_database_url or app.settings.app_database_url)) as c:
            holders = [r[0] for r in c.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted")]
        # The server-side session that holds the lock is the one the publisher talks to: never a pooler's.
        assert pid in holders
        with feed.session("probe") as second:
            assert second is None
    with feed.session("probe") as later:
        assert later is not None


def test_a_batch_append_is_all_or_nothing_through_the_pooler(app: EventStore, tenant_id: str) -> None:
    tenant = app.tenant(tenant_id)
    first = event({"n": 1}, EventType.STEP_COMPLETED)
    tenant.append("instance:b", [first])
    # The second event reuses the first one's id: the batch is refused, and its first event with it.
    clash = [
        event({"n": 2}, EventType.STEP_COMPLETED),
        event({"n": 3}, EventType.STEP_COMPLETED, event_id=first.event_id),
    ]
    with pytest.raises(DuplicateEventId):
        tenant.append("instance:b", clash)
    assert [e.sequence_number for e in tenant.read_stream("instance:b")] == [1]
