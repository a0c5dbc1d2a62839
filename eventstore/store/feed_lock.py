"""One publisher per tenant and sink: a session-level advisory lock, held on an idle autocommit connection.

Session-level, so no transaction stays open while a batch is on the wire (an open transaction would hold
back every tenant's feed horizon, see `read_all`); and released by the server when the holder's
connection ends, so a publisher killed mid-batch never leaves the feed locked. One lock per sink, so a
sink that is failing (and being retried) never keeps another sink of the tenant from publishing.
"""

from __future__ import annotations

from typing import Any

import psycopg

# The two-int4 form of the advisory lock functions: a lock space of its own, apart from the bigint keys of
# the per-stream append locks. The first key says "change feed", the second names the schema and sink.
_FEED_LOCK_CLASS = 0x45534644  # "ESFD"


def _key(schema: str, sink: str) -> str:
    return f"{schema}/{sink}"


def try_lock_feed(conn: psycopg.Connection[Any], schema: str, sink: str) -> bool:
    row = conn.execute(
        "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_FEED_LOCK_CLASS, _key(schema, sink))
    ).fetchone()
    return bool(row and row[0])


def unlock_feed(conn: psycopg.Connection[Any], schema: str, sink: str) -> bool:
    """Release the lock; False if this session did not hold it."""
    row = conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (_FEED_LOCK_CLASS, _key(schema, sink))).fetchone()
    return bool(row and row[0])
