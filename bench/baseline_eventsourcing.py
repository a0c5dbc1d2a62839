"""The eventsourcing 9.5.6 baseline: its PostgreSQL application recorder, in a schema of its own.

`PostgresApplicationRecorder` is the recorder an eventsourcing application uses: like the store it
keeps a global order (its `notification_id`), which it protects with `LOCK TABLE ... IN EXCLUSIVE MODE`
in every insert transaction.
"""

from __future__ import annotations

import itertools
import secrets
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from bench.payloads import envelope
from bench.timing import Op

_TOPIC = "marain.workflows.events:TriggerReceived"


def datastore_for(dsn: str, schema: str, pool_size: int) -> Any:
    """eventsourcing's `PostgresDatastore` on the database `dsn` names, in `schema`."""
    from eventsourcing.postgres import PostgresDatastore

    params = conninfo_to_dict(dsn)
    return PostgresDatastore(
        dbname=str(params.get("dbname") or params.get("user") or "postgres"),
        host=str(params.get("host") or "localhost"),
        port=str(params.get("port") or 5432),
        user=str(params.get("user") or "postgres"),
        password=str(params.get("password") or ""),
        schema=schema,
        pool_size=pool_size,
    )


class EventSourcingBench:
    """Writers and a reader through `insert_events` / `select_events`; one originator per writer."""

    def __init__(self, dsn: str, read_events: int, pool_size: int = 4) -> None:
        from eventsourcing.persistence import StoredEvent
        from eventsourcing.postgres import PostgresApplicationRecorder

        self._stored_event: Any = StoredEvent
        self.dsn = dsn
        self.schema = "bench_es_" + secrets.token_hex(4)
        self.read_events = read_events
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
        self.datastore: Any = datastore_for(dsn, self.schema, pool_size)
        self.recorder: Any = PostgresApplicationRecorder(self.datastore)
        self.recorder.create_table()
        self.read_originator = uuid4()
        self._versions: dict[UUID, itertools.count[int]] = {}

    def close(self, *, drop: bool = True) -> None:
        self.datastore.close()
        if drop:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))

    def _stored(self, originator: UUID, count: int) -> list[Any]:
        versions = self._versions.setdefault(originator, itertools.count(1))
        return [self._stored_event(originator, next(versions), _TOPIC, envelope()) for _ in range(count)]

    def insert_op(self, batch: int = 1) -> Op:
        """`insert_events` of `batch` events of one new originator (aggregate) per call."""
        originator = uuid4()
        recorder = self.recorder

        def op() -> int:
            recorder.insert_events(self._stored(originator, batch))
            return batch

        return op

    def populate_reads(self) -> None:
        remaining = self.read_events
        while remaining:
            count = min(100, remaining)
            self.recorder.insert_events(self._stored(self.read_originator, count))
            remaining -= count

    def read_stream_op(self) -> Op:
        """`select_events` of the whole originator: `StoredEvent` objects, state as bytes."""
        recorder, originator, expected = self.recorder, self.read_originator, self.read_events

        def op() -> int:
            events = recorder.select_events(originator)
            if len(events) != expected:
                raise AssertionError(f"read {len(events)} events, expected {expected}")
            return len(events)

        return op
