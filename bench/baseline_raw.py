"""The raw psycopg baseline: an equivalent plain table, written and read with the cheapest statements.

The table has the columns and indexes of the store's `events` table
(eventstore/store/migrations/tenant/0001_event_tables.sql) but is not partitioned, has no `streams` or
`event_ids` table next to it and no triggers. It lives in a schema of its own, dropped at the end.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
from typing import Any
from uuid import uuid4

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from bench.payloads import envelope
from bench.timing import Op

_DDL = """
CREATE SCHEMA {schema};
CREATE SEQUENCE {schema}.global_position_seq AS bigint;
CREATE TABLE {schema}.{table} (
    global_position       bigint NOT NULL DEFAULT nextval({sequence}),
    transaction_id        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    stream_id             text NOT NULL,
    sequence_number       bigint NOT NULL CHECK (sequence_number > 0),
    event_id              uuid NOT NULL,
    event_type            text NOT NULL,
    payload               bytea,
    payload_sha256        bytea NOT NULL CHECK (octet_length(payload_sha256) = 32),
    payload_size          integer NOT NULL CHECK (payload_size >= 0),
    payload_json          jsonb,
    blob_ref              text,
    content_type          text NOT NULL,
    workflow_id           text,
    workflow_instance_id  text,
    user_id               text,
    correlation_id        text,
    causation_id          text,
    source_system         text,
    recorded_at           timestamptz NOT NULL DEFAULT now(),
    CHECK ((payload IS NULL) <> (blob_ref IS NULL))
);
CREATE INDEX ON {schema}.{table} (stream_id, sequence_number);
CREATE INDEX ON {schema}.{table} (transaction_id, global_position);
CREATE INDEX ON {schema}.{table} (recorded_at);
CREATE INDEX ON {schema}.{table} (event_type, recorded_at);
CREATE INDEX ON {schema}.{table} (workflow_id, recorded_at) WHERE workflow_id IS NOT NULL;
CREATE INDEX ON {schema}.{table} USING gin (payload_json jsonb_path_ops);
"""

# What a writer sends: the store's columns less the defaulted ones (position, transaction, time).
_INSERT_COLUMNS = (
    "stream_id, sequence_number, event_id, event_type, payload, payload_sha256, payload_size, payload_json, "
    "content_type"
)
_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)"

# The same columns, in the same order, as the store's reads return (eventstore/store/read_stream.py).
READ_COLUMNS = (
    "global_position, transaction_id::text::bigint, stream_id, sequence_number, event_id, event_type, "
    "payload, payload_sha256, payload_size, blob_ref, content_type, workflow_id, workflow_instance_id, "
    "user_id, correlation_id, causation_id, source_system, recorded_at"
)

_EVENT_TYPE = "TriggerReceived"
_CONTENT_TYPE = "application/json"


def _json_text(text: Any) -> str:
    """A `dumps` for `Jsonb` that passes JSON text through as it is (COPY gets the payload unchanged)."""
    return str(text)


class RawBench:
    """Plain-table writers and readers on their own connections (autocommit: one statement, one commit)."""

    def __init__(self, dsn: str, read_events: int) -> None:
        self.dsn = dsn
        self.schema = "bench_raw_" + secrets.token_hex(4)
        self.read_events = read_events
        self.read_stream_id = "read-" + secrets.token_hex(4)
        self._conns: list[psycopg.Connection[Any]] = []
        self._sequences: dict[str, itertools.count[int]] = {}
        schema = sql.Identifier(self.schema)
        with self.connect() as conn:
            for table in ("events", "read_events"):
                ddl = (
                    _DDL
                    if table == "events"
                    else _DDL.replace("CREATE SCHEMA {schema};", "").replace(
                        "CREATE SEQUENCE {schema}.global_position_seq AS bigint;", ""
                    )
                )
                conn.execute(
                    sql.SQL(ddl).format(
                        schema=schema,
                        table=sql.Identifier(table),
                        sequence=sql.Literal(f"{self.schema}.global_position_seq"),
                    )
                )
        self.events = sql.Identifier(self.schema, "events")
        self.read_table = sql.Identifier(self.schema, "read_events")
        self._single = self._insert_statement(self.events, 1)

    def connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.dsn, autocommit=True)
        self._conns.append(conn)
        return conn

    def close(self, *, drop: bool = True) -> None:
        if drop:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))
        for conn in self._conns:
            conn.close()

    @staticmethod
    def _insert_statement(table: sql.Identifier, rows: int) -> bytes:
        # Only module constants go into the text; the table goes through sql.Identifier.
        template = "INSERT INTO {} (" + _INSERT_COLUMNS + ") VALUES " + ", ".join([_ROW] * rows)
        return sql.SQL(template).format(table).as_bytes(None)

    def _rows(self, stream_id: str, count: int) -> list[Any]:
        """Flat parameters of `count` new events of `stream_id` (hash computed here, as the store does)."""
        sequence = self._sequences.setdefault(stream_id, itertools.count(1))
        params: list[Any] = []
        for _ in range(count):
            payload = envelope()
            params += (
                stream_id,
                next(sequence),
                uuid4(),
                _EVENT_TYPE,
                payload,
                hashlib.sha256(payload).digest(),
                len(payload),
                payload.decode(),
                _CONTENT_TYPE,
            )
        return params

    # --- writes -------------------------------------------------------------------------------------

    def insert_op(self, stream_id: str, rows: int = 1) -> Op:
        """One INSERT of `rows` rows (multi-row VALUES) per call, on a connection of its own."""
        conn = self.connect()
        statement = self._single if rows == 1 else self._insert_statement(self.events, rows)

        def op() -> int:
            conn.execute(statement, self._rows(stream_id, rows))
            return rows

        return op

    def copy_op(self, stream_id: str, rows: int = 100, table: sql.Identifier | None = None) -> Op:
        """One binary COPY of `rows` rows per call (its own transaction), on a connection of its own."""
        conn = self.connect()
        statement = sql.SQL("COPY {} (" + _INSERT_COLUMNS + ") FROM STDIN (FORMAT BINARY)").format(table or self.events)
        types = ["text", "int8", "uuid", "text", "bytea", "bytea", "int4", "jsonb", "text"]
        width = len(types)

        def op() -> int:
            params = self._rows(stream_id, rows)
            with conn.cursor() as cur, cur.copy(statement) as copy:
                copy.set_types(types)
                for start in range(0, len(params), width):
                    row = params[start : start + width]
                    row[7] = Jsonb(row[7], dumps=_json_text)
                    copy.write_row(row)
            return rows

        return op

    # --- reads --------------------------------------------------------------------------------------

    def populate_reads(self) -> None:
        """The read table: `read_events` events of one stream, 100 per transaction (as the store's)."""
        conn = self.connect()
        remaining = self.read_events
        while remaining:
            count = min(100, remaining)
            statement = self._insert_statement(self.read_table, count)
            conn.execute(statement, self._rows(self.read_stream_id, count))
            remaining -= count
        conn.execute(sql.SQL("ANALYZE {}").format(self.read_table))

    def read_stream_op(self) -> Op:
        """The stream in one SELECT of the store's columns: default tuples, text protocol."""
        conn = self.connect()
        template = (
            f"SELECT {READ_COLUMNS} FROM {{}} WHERE stream_id = %s AND sequence_number >= %s "
            "ORDER BY sequence_number LIMIT %s"
        )
        statement = sql.SQL(template).format(self.read_table)
        stream_id, expected = self.read_stream_id, self.read_events

        def op() -> int:
            rows = conn.execute(statement, (stream_id, 1, expected)).fetchall()
            if len(rows) != expected:
                raise AssertionError(f"read {len(rows)} rows, expected {expected}")
            return len(rows)

        return op

    def read_all_op(self, page_size: int = 1000) -> Op:
        """The table in commit-safe order, pages of `page_size` after a (transaction, position) key:
        the store's all-stream predicate on the plain table, text protocol.

        ORDER BY names the table's columns (`e.`): a bare `transaction_id` would mean the output column
        `transaction_id::text::bigint`, which no index matches, so every page would sort the whole table.
        """
        conn = self.connect()
        template = (
            f"SELECT {READ_COLUMNS} FROM {{}} AS e"
            " WHERE (e.transaction_id, e.global_position) > (%s::text::xid8, %s)"
            " AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
            " ORDER BY e.transaction_id, e.global_position LIMIT %s"
        )
        statement = sql.SQL(template).format(self.read_table)
        expected = self.read_events

        def op() -> int:
            count = 0
            key: tuple[int, int] = (0, 0)
            while True:
                rows = conn.execute(statement, (str(key[0]), key[1], page_size + 1)).fetchall()
                page = rows[:page_size]
                count += len(page)
                if page:
                    key = (page[-1][1], page[-1][0])
                if len(rows) <= page_size:
                    break
            if count != expected:
                raise AssertionError(f"read {count} rows of the all-stream, expected {expected}")
            return count

        return op
