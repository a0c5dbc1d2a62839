"""Payloads found missing or altered when read: recorded per event, listed by the tenant's health."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, NamedTuple
from uuid import UUID

import psycopg
from psycopg import sql

from eventstore.store.schema import EVENT_IDS, EVENTS, PAYLOAD_PROBLEMS, table

Problem = Literal["missing", "mismatch"]


class PayloadProblem(NamedTuple):
    event_id: UUID
    blob_ref: str | None
    problem: str
    first_seen_at: datetime
    last_seen_at: datetime
    times_seen: int
    stream_id: str | None
    sequence_number: int | None


def record_problem(
    conn: psycopg.Connection[Any], schema: str, event_id: UUID, blob_ref: str | None, problem: Problem
) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {t} AS p (event_id, blob_ref, problem) VALUES (%s, %s, %s) ON CONFLICT (event_id) DO UPDATE"
            " SET problem = EXCLUDED.problem, last_seen_at = now(), times_seen = p.times_seen + 1"
        ).format(t=table(schema, PAYLOAD_PROBLEMS)),
        (event_id, blob_ref, problem),
    )


def clear_problems(conn: psycopg.Connection[Any], schema: str, event_ids: Sequence[UUID]) -> int:
    cursor = conn.execute(
        sql.SQL("DELETE FROM {t} WHERE event_id = ANY(%s)").format(t=table(schema, PAYLOAD_PROBLEMS)),
        (list(event_ids),),
    )
    return cursor.rowcount


def list_problems(conn: psycopg.Connection[Any], schema: str, limit: int) -> list[PayloadProblem]:
    """The most recently seen first, with where each event sits."""
    rows = conn.execute(
        sql.SQL(
            "SELECT p.event_id, p.blob_ref, p.problem, p.first_seen_at, p.last_seen_at, p.times_seen,"
            " i.stream_id, i.sequence_number FROM {p} p LEFT JOIN {ids} i USING (event_id)"
            " ORDER BY p.last_seen_at DESC, p.event_id LIMIT %s"
        ).format(p=table(schema, PAYLOAD_PROBLEMS), ids=table(schema, EVENT_IDS)),
        (limit,),
    ).fetchall()
    return [PayloadProblem(*row) for row in rows]


def count_problems(conn: psycopg.Connection[Any], schema: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table(schema, PAYLOAD_PROBLEMS))).fetchone()
    return int(row[0]) if row else 0


def blob_refs_after(
    conn: psycopg.Connection[Any], schema: str, after_position: int, limit: int
) -> list[tuple[int, UUID, str]]:
    """(global position, event id, blob reference) of Blob-backed events after `after_position`."""
    rows = conn.execute(
        sql.SQL(
            "SELECT global_position, event_id, blob_ref FROM {} WHERE blob_ref IS NOT NULL AND global_position > %s"
            " ORDER BY global_position LIMIT %s"
        ).format(table(schema, EVENTS)),
        (after_position, limit),
    ).fetchall()
    return [(int(r[0]), r[1], str(r[2])) for r in rows]
