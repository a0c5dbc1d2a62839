"""List stream ids by prefix, in id order, after a given id (keyset pages)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from eventstore.store.schema import STREAMS, table


def list_streams(conn: psycopg.Connection[Any], schema: str, prefix: str, after: str, limit: int) -> list[str]:
    # Stream ids are COLLATE "C", so the bounds are a byte-wise prefix range the primary key serves.
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    rows = conn.execute(
        sql.SQL(
            "SELECT stream_id FROM {} WHERE stream_id > %s AND stream_id >= %s AND stream_id < %s"
            " ORDER BY stream_id LIMIT %s"
        ).format(table(schema, STREAMS)),
        (after, prefix, upper, limit),
    ).fetchall()
    return [str(r[0]) for r in rows]
