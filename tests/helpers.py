"""Small builders shared by the tests."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import requests
from psycopg import sql

from eventstore import (
    START,
    AppendResult,
    Checkpoint,
    EventStore,
    EventType,
    NewEvent,
    Settings,
    StreamState,
    TenantEvents,
)
from eventstore.models import ExpectedVersion
from eventstore.store import DeadLetter, FeedEntry, FeedSession, TenantFeed
from eventstore.store.append_events import append_events
from eventstore.store.feed_checkpoints import add_dead_letters
from eventstore_local.host.process import HostProcess

Connection = psycopg.Connection[tuple[Any, ...]]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The checkout's root (where pyproject.toml is)."""

CONTINUATION_KEY = "test-continuation-key-0123456789"

REPLAY_ROUTER_QUEUE = "replays-router-test"
ARCHIVE_KEY = "ZXZlbnRzdG9yZS10ZXN0LWFyY2hpdmUta2V5LTMyYnk="
"""The suite host's archive key (base64 of 32 bytes), so that tests archive payloads it can read back."""
"""The queue the suite's local host sends replays to (its deployment-wide replay router)."""
"""The local host's EVENTSTORE_CONTINUATION_KEY in the suite (tests sign tokens with it)."""


def random_tenant_id() -> str:
    """A Marain-shaped client tenant id: two levels of 32 lowercase hex characters."""
    return secrets.token_hex(32)


def event(
    payload: Any = None,
    event_type: EventType | str = EventType.STEP_COMPLETED,
    **fields: Any,
) -> NewEvent:
    """A NewEvent with a fresh id; `payload` may be bytes or anything JSON-serialisable."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload if payload is not None else {"n": 1}).encode()
    return NewEvent(event_id=fields.pop("event_id", uuid4()), event_type=event_type, payload=body, **fields)


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Run `target(index)` in `count` threads released together; re-raise the first failure."""
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            start.wait(timeout=30)
            target(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), name=f"worker-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    if errors:
        raise errors[0]


@contextmanager
def app_connection(settings: Settings) -> Iterator[Connection]:
    """An autocommit connection of its own as the application role, as the functions connect."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(settings.app_role)))
        yield conn


def append_on(
    conn: Connection,
    tenant: TenantEvents,
    settings: Settings,
    stream_id: str,
    events: list[NewEvent],
    expected: ExpectedVersion = StreamState.ANY,
) -> AppendResult:
    """The store's append, on `conn`, inside whatever transaction the caller holds open."""
    return append_events(
        conn,
        tenant.placement.schema_name,
        stream_id,
        events,
        expected,
        inline_limit=settings.inline_payload_limit,
        max_batch=settings.max_batch_size,
    )


READER_SINK = "test-reader"
"""The sink name the feed helpers read under: a lock of its own, so they never contend with a real sink."""


def feed_checkpoint(feed: TenantFeed, sink: str) -> Checkpoint:
    """Where `sink` has got to on the tenant's all-stream (START when it has no checkpoint row)."""
    state = feed.sink_states().get(sink)
    return state.checkpoint if state else START


@contextmanager
def feed_session(feed: TenantFeed, sink: str) -> Iterator[FeedSession]:
    """The tenant's feed session for `sink`; fails the test if another holder has the sink's lock."""
    with feed.session(sink) as session:
        assert session is not None, f"the feed lock of {sink} is held elsewhere"
        yield session


def read_feed(feed: TenantFeed, after: Checkpoint, limit: int) -> list[FeedEntry]:
    """Up to `limit` feed entries after `after`, as the publisher reads them."""
    with feed_session(feed, READER_SINK) as session:
        return session.read(after, limit).events


def feed_waiting(feed: TenantFeed, after: Checkpoint) -> bool:
    """Whether events lie after `after` that the feed cannot read yet (an older transaction is open)."""
    with feed_session(feed, READER_SINK) as session:
        return session.waiting(after)


def dead_letter(store: EventStore, tenant_id: str, sink: str, letters: list[DeadLetter]) -> None:
    """Record dead letters for `sink` without touching its checkpoint (no checkpoint row is created), on a
    connection of its own as the application role."""
    with app_connection(store.settings) as conn:
        add_dead_letters(conn, store.feed(tenant_id).placement.schema_name, sink, letters)


def settle(store: EventStore, tenant: TenantEvents, seconds: float = 30.0) -> None:
    """Wait until every event committed to `tenant` so far can be read from its all-stream. Reads stop
    below the oldest transaction in flight anywhere on the server, and the suite shares its server with
    the local host's timers, so an event just committed may stay unreadable for a moment."""
    deadline = time.monotonic() + seconds
    feed = store.feed(tenant.tenant_id)
    while feed_waiting(feed, tenant.read_all(START, limit=100_000).next_checkpoint) and time.monotonic() < deadline:
        time.sleep(0.01)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120.0, every: float = 0.2) -> Any:
    """`check()` once it is truthy; failing with `what` (and the last answer) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s (last: {found!r})"
        time.sleep(every)


class EngineHost(HostProcess):
    """`eventstore host` in a process of its own with replays routed to the sample engine's queue (the engine
    and its destinations run in the test, as another service would). `settings` add to or override its app
    settings."""

    def __init__(self, database_url: str, storage: str, queue: str, folder: Path, **settings: str) -> None:
        env = {
            "EVENTSTORE_DATABASE_URL": database_url,
            "AzureWebJobsStorage": storage,
            "EVENTSTORE_CONTINUATION_KEY": CONTINUATION_KEY,
            "EVENTSTORE_REPLAY_ROUTER__QUEUE": queue,
            "EVENTSTORE_REPLAY_SCHEDULE": "*/1 * * * * *",
            # The database may hold other tests' tenants: no timer goes over all of them (the views are brought
            # up to date by the nudge after each append and before each read).
            "EVENTSTORE_FEED_SCHEDULE": "0 0 0 * * *",
            "EVENTSTORE_VIEWS_SCHEDULE": "0 0 0 * * *",
            "EVENTSTORE_ALERTS_SCHEDULE": "0 0 0 * * *",
            "EVENTSTORE_FULL_PASS_SECONDS": "86400",
            **settings,
        }
        super().__init__(folder, env, ["--no-engine", "--eventgrid-port", "-1", "--alerts-port", "-1"])

    def call(self, method: str, path: str, body: Any = None, **params: str) -> requests.Response:
        return requests.request(method, f"{self.api}/{path}", json=body, params=params or None, timeout=60)

    def onboard(self) -> str:
        tenant = uuid4().hex + uuid4().hex
        assert self.call("PUT", f"tenants/{tenant}", {}).status_code == 201
        return tenant
