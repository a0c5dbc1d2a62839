"""Connections that die: a pooled connection the server ended is never handed out, and an operation whose
connection dies under it is run once more only when that is safe (store.connection.run), on the real
PostgreSQL of the suite. Sessions are ended with pg_terminate_backend, the server stays up."""

from __future__ import annotations

import json
import os
import socket
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from eventstore import EventStore
from eventstore.errors import PayloadMissing, StoreUnavailable
from eventstore.http.problems import problem_response
from eventstore.store.connection import Conn, StorePool, run


@pytest.fixture
def pool(store: EventStore) -> StorePool:
    store.registry  # noqa: B018 - opens the application pool
    return store.pools.app("default")


def _pids(pool: StorePool, count: int) -> list[int]:
    """Take `count` connections at once (so the pool holds that many), return them, and their backends."""
    conns = [pool.getconn() for _ in range(count)]
    pids = [conn.info.backend_pid for conn in conns]
    for conn in conns:
        pool.putconn(conn)
    return pids


def test_connections_the_server_ended_are_never_handed_out(
    pool: StorePool, owner_conn: psycopg.Connection[tuple[Any, ...]]
) -> None:
    pids = _pids(pool, 3)
    owner_conn.execute("SELECT pg_terminate_backend(pid, 5000) FROM unnest(%s::int[]) AS pid", (pids,))
    with pool.connection() as conn:  # the dead ones are dropped on the way out, without a round trip
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.info.backend_pid not in pids


def _ended_on_first_call(result: Any) -> tuple[list[int], Any]:
    calls: list[int] = []

    def operation(conn: Conn) -> Any:
        calls.append(conn.info.backend_pid)
        if len(calls) == 1:
            conn.execute("RESET ROLE")  # the session's own user may end it; the application role may not
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")  # the server ends the session: 57P01
        return result

    return calls, operation


@pytest.mark.parametrize("writes", [False, True], ids=["read", "write"])
def test_an_operation_whose_session_the_server_ended_runs_once_more(pool: StorePool, writes: bool) -> None:
    calls, operation = _ended_on_first_call("done")
    assert run(pool, operation, writes=writes) == "done"
    assert len(calls) == 2 and calls[0] != calls[1]


def _lost_on_first_call() -> tuple[list[int], Any]:
    """The connection vanishes under the first call without a word from the server (as when a host dies):
    a COMMIT could have happened, for all the client knows."""
    calls: list[int] = []

    def operation(conn: Conn) -> str:
        calls.append(conn.info.backend_pid)
        if len(calls) == 1:
            # shutdown() acts on the socket libpq holds (through a duplicate descriptor), not on the descriptor.
            with socket.socket(fileno=os.dup(conn.fileno())) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        conn.execute("SELECT 1")
        return "done"

    return calls, operation


def test_a_read_whose_connection_vanished_runs_once_more(pool: StorePool) -> None:
    calls, operation = _lost_on_first_call()
    assert run(pool, operation) == "done"
    assert len(calls) == 2


def test_a_write_whose_connection_vanished_is_not_repeated(pool: StorePool) -> None:
    calls, operation = _lost_on_first_call()
    with pytest.raises(StoreUnavailable):
        run(pool, operation, writes=True)
    assert len(calls) == 1


def test_a_failure_the_server_answered_is_not_repeated(pool: StorePool) -> None:
    calls: list[int] = []

    def operation(conn: Conn) -> None:
        calls.append(1)
        conn.execute("SET statement_timeout = 1")
        try:
            conn.execute("SELECT pg_sleep(1)")  # QueryCanceled: an OperationalError, the connection fine
        finally:
            conn.execute("RESET statement_timeout")

    with pytest.raises(StoreUnavailable):
        run(pool, operation)
    assert len(calls) == 1


def test_a_missing_payload_is_410_naming_the_lost_blob() -> None:
    event_id = uuid4()
    response = problem_response(PayloadMissing("abc/0123", event_id), "/api/tenants/t/events/x")
    assert response.status_code == 410
    body = json.loads(response.get_body())
    assert body["type"] == "urn:eventstore:problem:payload-missing"
    assert body["blobRef"] == "abc/0123" and body["eventId"] == str(event_id)
    assert "abc/0123" in body["detail"] and "Retry-After" not in response.headers
