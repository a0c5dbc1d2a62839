"""Small builders shared by the tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import psycopg
from psycopg import sql

from eventstore import AppendResult, EventType, NewEvent, Settings, StreamState, TenantEvents
from eventstore.models import ExpectedVersion
from eventstore.store.append_events import append_events

Connection = psycopg.Connection[tuple[Any, ...]]


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
