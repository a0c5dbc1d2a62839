"""Which tenants may have events a reader (a feed sink, a view) has not taken: the cheap signal the timers
go by, so that an idle deployment costs the database next to nothing whatever its number of tenants.

One statement per database (as the application role) reads every tenant schema's all-stream head
(`global_position_seq`'s `last_value`, from the `pg_sequences` catalog view) and whether any other
session of that database holds a transaction id. A reader that a run found caught up (nothing after its
checkpoint, nothing behind an open transaction) while no transaction was in flight is *settled* at that
head; until the head moves, the timers skip that reader of that tenant. The nudge after an append runs
the readers whatever this says.

A transaction that has taken a position but not yet an id (the instant between `nextval` and its first
row inside one INSERT statement) escapes the in-flight check. So a reader is settled only when two runs in a
row, a timer tick apart, found it caught up at the same head with nothing in flight: such a transaction holds
an id microseconds later, long before the second run. Its append's own nudge covers it too, and as a last
backstop every reader of every tenant runs anyway once per `full_pass_seconds` (an hour by default: a full
pass costs a few statements per reader per tenant, 3,562 at 1,000 tenants, so it is kept rare).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psycopg

from eventstore.store.connection import Pools, run
from eventstore.store.schema import GLOBAL_POSITION_SEQUENCE
from eventstore.tenancy import TenantPlacement

# Quiet: no other session of this database holds a transaction id (only a session connected to a database
# can write its tenants' events). Only a role that may see every session's activity can tell
# (pg_read_all_stats, which the migrations grant the application role where the owner may); for any other
# role no server is ever quiet, so nothing is settled and the timers run every reader, as they would without
# this signal. (The snapshot's xmin and xmax cannot tell: a running transaction with the newest id is beyond
# the snapshot's xmax.)
_HEADS = (
    "SELECT s.schemaname, coalesce(s.last_value, 0), q.quiet FROM pg_sequences AS s,"
    " (SELECT (pg_has_role('pg_read_all_stats', 'USAGE')"
    " OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))"
    " AND NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
    " AND datid = (SELECT oid FROM pg_database WHERE datname = current_database()))"
    " AS quiet) AS q WHERE s.sequencename = %s"
)


@dataclass(frozen=True, slots=True)
class Heads:
    """Each tenant schema's all-stream head on one database, and whether nothing was in flight."""

    by_schema: dict[str, int]
    quiet: bool


class PendingWork:
    """Remembers, per reader and tenant, the head at which the reader was last found settled."""

    def __init__(self, pools: Pools, full_pass_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._pools = pools
        self._full_pass_seconds = full_pass_seconds
        self._clock = clock
        self._lock = threading.Lock()
        # (head, confirmed): found caught up once at head, or twice in a row (then skipped until it moves).
        self._settled: dict[tuple[str, str], tuple[int, bool]] = {}
        self._last_full_pass: dict[str, float] = {}

    def heads(self, dsn_name: str) -> Heads:
        def read(conn: psycopg.Connection[Any]) -> Heads:
            rows = conn.execute(_HEADS, (GLOBAL_POSITION_SEQUENCE,)).fetchall()
            return Heads({str(r[0]): int(r[1]) for r in rows}, bool(rows[0][2]) if rows else True)

        return run(self._pools.app(dsn_name), read)

    def plan(self, reader: str, placements: Iterable[TenantPlacement]) -> list[tuple[TenantPlacement, int, bool]]:
        """The tenants `reader` should run for now, each with the head seen and whether the server was
        quiet: those whose head moved since the reader settled there, or all of them on a full pass."""
        now = self._clock()
        with self._lock:
            full = now - self._last_full_pass.get(reader, float("-inf")) >= self._full_pass_seconds
            if full:
                self._last_full_pass[reader] = now
        heads: dict[str, Heads] = {}
        due = []
        for placement in placements:
            if placement.dsn_name not in heads:
                heads[placement.dsn_name] = self.heads(placement.dsn_name)
            on = heads[placement.dsn_name]
            head = on.by_schema.get(placement.schema_name, 0)
            with self._lock:
                settled = self._settled.get((reader, placement.tenant_id))
            if full or settled != (head, True):
                due.append((placement, head, on.quiet))
        return due

    def settle(self, reader: str, tenant_id: str, head: int) -> None:
        """`reader` of the tenant was found caught up at `head` with nothing in flight: the second time in a
        row at that head, it is skipped from now on until the head moves."""
        with self._lock:
            before = self._settled.get((reader, tenant_id))
            self._settled[(reader, tenant_id)] = (head, before is not None and before[0] == head)

    def unsettle(self, reader: str, tenant_id: str) -> None:
        with self._lock:
            self._settled.pop((reader, tenant_id), None)
