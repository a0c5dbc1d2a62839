"""One tenant's views in the store: their checkpoints, the session a view is kept current through, and
the statements a view runs over its own tables.

A view's handler writes through a `ViewWriter`: SQL text whose `{name}` placeholders name the view's
own tables (rendered with `sql.Identifier`, so no identifier is ever spliced in as text) and whose
values travel as parameters. The batch and the checkpoint past it commit in one transaction, so each
event affects a view exactly once. One runner per tenant and view at a time: a session-level advisory
lock, as for the change feed (`feed_lock`), in a lock space of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple
from uuid import UUID

import psycopg
from psycopg import sql

from eventstore.models import START, AllStreamPage, Checkpoint, RecordedEvent
from eventstore.store.connection import StorePool, run, translated_errors
from eventstore.store.read_all import read_all_after
from eventstore.store.read_feed import any_after, pending_after
from eventstore.store.schema import EVENTS, VIEW_CHECKPOINTS, table
from eventstore.tenancy import TenantPlacement

_VIEW_LOCK_CLASS = 0x45535657  # "ESVW": apart from the feed's and the appends' lock spaces


class ViewState(NamedTuple):
    """Where a view has got to, and where it stopped if it did."""

    view: str
    checkpoint: Checkpoint
    events_applied: int
    updated_at: datetime | None
    last_event_at: datetime | None
    stopped_event_id: UUID | None
    stopped_reason: str | None
    stopped_at: datetime | None


_STATE_COLUMNS = (
    "view, transaction_id::text::bigint, global_position, events_applied, updated_at, last_event_at,"
    " stopped_event_id, stopped_reason, stopped_at"
)


def _state(row: Sequence[Any]) -> ViewState:
    return ViewState(row[0], Checkpoint(int(row[1]), int(row[2])), int(row[3]), *row[4:])


@lru_cache(maxsize=4096)
def _render(schema: str, tables: tuple[tuple[str, str], ...], statement: str) -> bytes:
    return sql.SQL(statement).format(**{name: table(schema, physical) for name, physical in tables}).as_bytes(None)


class ViewWriter:
    """Statements over one view's own tables, inside the transaction that also moves its checkpoint."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str, tables: Mapping[str, str]) -> None:
        self._conn, self._schema = conn, schema
        self._tables = tuple(sorted(tables.items()))

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run `statement` (`{table}` placeholders, `%s` values); the rows it returns, if any."""
        cursor = self._conn.execute(_render(self._schema, self._tables, statement), params)
        return cursor.fetchall() if cursor.description else []

    def executemany(self, statement: str, params: Sequence[Sequence[Any]]) -> None:
        if params:
            with self._conn.cursor() as cursor:
                cursor.executemany(_render(self._schema, self._tables, statement), params)


class ViewSession:
    """Keep one view of one tenant current, holding its lock. Obtain one with `TenantViews.session`."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str, view: str) -> None:
        self._conn, self._schema, self.view = conn, schema, view

    def state(self) -> ViewState:
        with translated_errors():
            row = self._conn.execute(
                sql.SQL("SELECT " + _STATE_COLUMNS + " FROM {} WHERE view = %s").format(
                    table(self._schema, VIEW_CHECKPOINTS)
                ),
                (self.view,),
            ).fetchone()
        return _state(row) if row else ViewState(self.view, START, 0, None, None, None, None, None)

    def read(self, after: Checkpoint, limit: int) -> AllStreamPage:
        """Whole events (payloads included) after `after`, in commit-safe all-stream order."""
        with translated_errors():
            return read_all_after(self._conn, self._schema, after, limit)

    def waiting(self, after: Checkpoint) -> bool:
        """Whether events lie after `after` that `read` cannot return yet."""
        with translated_errors():
            return any_after(self._conn, self._schema, after)

    def apply(
        self,
        events: Sequence[RecordedEvent],
        tables: Mapping[str, str],
        handler: Callable[[ViewWriter, Sequence[RecordedEvent]], None],
    ) -> Checkpoint:
        """`handler` over `events` and the checkpoint past the last of them, in one transaction; a stop
        recorded earlier is cleared. Returns the new checkpoint. If `handler` raises, nothing is kept."""
        last = events[-1]
        checkpoint = Checkpoint(last.transaction_id, last.global_position)
        with translated_errors(), self._conn.transaction():
            handler(ViewWriter(self._conn, self._schema, tables), events)
            self._conn.execute(
                sql.SQL(
                    "INSERT INTO {t} AS c (view, transaction_id, global_position, events_applied, last_event_at)"
                    " VALUES (%s, %s::text::xid8, %s, %s, %s)"
                    " ON CONFLICT (view) DO UPDATE SET transaction_id = EXCLUDED.transaction_id,"
                    " global_position = EXCLUDED.global_position,"
                    " events_applied = c.events_applied + EXCLUDED.events_applied, updated_at = now(),"
                    " last_event_at = EXCLUDED.last_event_at,"
                    " stopped_event_id = NULL, stopped_reason = NULL, stopped_at = NULL"
                ).format(t=table(self._schema, VIEW_CHECKPOINTS)),
                (self.view, str(checkpoint.transaction_id), checkpoint.global_position, len(events), last.recorded_at),
            )
        return checkpoint

    def change(self, tables: Mapping[str, str], handler: Callable[[ViewWriter], int]) -> int:
        """`handler` over the view's tables in one transaction, the checkpoint untouched (retention's pass
        over a view, under the view's lock); what `handler` answers."""
        with translated_errors(), self._conn.transaction():
            return handler(ViewWriter(self._conn, self._schema, tables))

    def stop(self, event: RecordedEvent, reason: str) -> None:
        """Record that the view cannot apply `event` (its checkpoint stays before it)."""
        with translated_errors():
            self._conn.execute(
                sql.SQL(
                    "INSERT INTO {t} AS c (view, stopped_event_id, stopped_reason, stopped_at)"
                    " VALUES (%s, %s, %s, now()) ON CONFLICT (view) DO UPDATE SET"
                    " stopped_event_id = EXCLUDED.stopped_event_id, stopped_reason = EXCLUDED.stopped_reason,"
                    " stopped_at = now()"
                ).format(t=table(self._schema, VIEW_CHECKPOINTS)),
                (self.view, event.event_id, reason[:2000]),
            )


SHADOW_SUFFIX = "__rebuild"
"""A rebuild builds a view's tables beside the live ones, under these names, then swaps them in."""


def shadow_of(view: str) -> str:
    """The checkpoint (and lock) name of a view's rebuild."""
    return view + SHADOW_SUFFIX


class TenantViews:
    """One tenant's views. Obtain one with `EventStore.views(tenant_id)`.

    `sessions` holds the runners' locks (`Pools.session`). `owner` gives the owner role's pool (opened on
    first use: only a rebuild, from the command line, needs it), which creates,
    drops and renames tables; the application role only reads and writes rows."""

    def __init__(
        self,
        placement: TenantPlacement,
        pool: StorePool,
        sessions: StorePool,
        owner: Callable[[], StorePool],
        app_role: str,
    ) -> None:
        self.placement = placement
        self._schema = placement.schema_name
        self._pool = pool
        # Runners hold a session lock: a pool straight to the server when `pool` is a transaction pooler.
        self._sessions = sessions
        self._owner = owner
        self._app_role = app_role

    @property
    def tenant_id(self) -> str:
        return self.placement.tenant_id

    @contextmanager
    def session(self, view: str) -> Iterator[ViewSession | None]:
        """Hold the lock of this tenant's `view` for the block, if no other runner has it: yields the
        session to keep it current through, or None. One pooled connection, idle between statements."""
        key = f"{self._schema}/{view}"
        with translated_errors(), self._sessions.connection() as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_VIEW_LOCK_CLASS, key)).fetchone()
            if not (row and row[0]):
                yield None
                return
            try:
                yield ViewSession(conn, self._schema, view)
            finally:
                released = False
                with suppress(Exception):
                    answer = conn.execute(
                        "SELECT pg_advisory_unlock(%s, hashtext(%s))", (_VIEW_LOCK_CLASS, key)
                    ).fetchone()
                    released = bool(answer and answer[0])
                if not released:
                    conn.close()  # never back to the pool holding the lock: the server releases it

    def states(self) -> dict[str, ViewState]:
        """Every view's checkpoint and stop, by view name."""

        def read(conn: psycopg.Connection[Any]) -> dict[str, ViewState]:
            rows = conn.execute(
                sql.SQL("SELECT " + _STATE_COLUMNS + " FROM {}").format(table(self._schema, VIEW_CHECKPOINTS))
            ).fetchall()
            return {row[0]: _state(row) for row in rows}

        return run(self._pool, read)

    def lag(self, after: Checkpoint) -> tuple[int, datetime | None]:
        """Events committed after `after`, and the oldest one's time."""
        pending = run(self._pool, lambda conn: pending_after(conn, self._schema, after))
        return pending.events, pending.oldest_recorded_at

    def recorded_after(self, after: Checkpoint, before: datetime) -> bool:
        """Whether an event committed after `after` was recorded before `before`. Walks the
        `(transaction_id, global_position)` index in order and stops at the first such event: a plan that
        does not depend on the partition's statistics, which a partition filled a moment ago lacks."""

        def read(conn: psycopg.Connection[Any]) -> bool:
            row = conn.execute(
                sql.SQL(
                    "SELECT 1 FROM {events} WHERE (transaction_id, global_position) > (%s::text::xid8, %s)"
                    " AND recorded_at < %s ORDER BY transaction_id, global_position LIMIT 1"
                ).format(events=table(self._schema, EVENTS)),
                (str(after.transaction_id), after.global_position, before),
            ).fetchone()
            return row is not None

        return run(self._pool, read)

    def holds_after(self, after: Checkpoint, global_position: int) -> bool:
        """Whether the event at `global_position` is committed after `after` (not yet applied by a reader
        at `after`). Scans the events after `after`: meant for a view that could not catch up."""

        def read(conn: psycopg.Connection[Any]) -> bool:
            row = conn.execute(
                sql.SQL(
                    "SELECT 1 FROM {events} WHERE (transaction_id, global_position) > (%s::text::xid8, %s)"
                    " AND global_position = %s ORDER BY transaction_id, global_position LIMIT 1"
                ).format(events=table(self._schema, EVENTS)),
                (str(after.transaction_id), after.global_position, global_position),
            ).fetchone()
            return row is not None

        return run(self._pool, read)

    def fetch(self, tables: Mapping[str, str], statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only `statement` over a view's tables (`{table}` placeholders, `%s` values)."""
        rendered = _render(self._schema, tuple(sorted(tables.items())), statement)
        return run(self._pool, lambda conn: conn.cursor(binary=True).execute(rendered, params).fetchall())

    def create_shadow(self, view: str, tables: Mapping[str, str]) -> dict[str, str]:
        """Empty copies of `view`'s tables (columns, defaults, indexes, grants) beside them, and a fresh
        checkpoint for the rebuild; any earlier unfinished rebuild is dropped. Returns the shadow tables."""
        shadow = {name: physical + SHADOW_SUFFIX for name, physical in tables.items()}
        with translated_errors(), self._owner().connection() as conn, conn.transaction():
            for name, physical in tables.items():
                live, copy = table(self._schema, physical), table(self._schema, shadow[name])
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(copy))
                conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(copy, live))
                conn.execute(
                    sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                        copy, sql.Identifier(self._app_role)
                    )
                )
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE view = %s").format(table(self._schema, VIEW_CHECKPOINTS)),
                (shadow_of(view),),
            )
        return shadow

    def swap_in_shadow(self, view: str, tables: Mapping[str, str]) -> None:
        """Replace `view`'s tables and checkpoint by its rebuild's, in one transaction: readers see the old
        view until the commit and the whole new one after it, never an empty or half-built one. The caller
        holds the view's lock (so no runner writes the old tables meanwhile) and has caught the rebuild up."""
        checkpoints = table(self._schema, VIEW_CHECKPOINTS)
        with translated_errors(), self._owner().connection() as conn, conn.transaction():
            for physical in tables.values():
                conn.execute(sql.SQL("DROP TABLE {}").format(table(self._schema, physical)))
                conn.execute(
                    sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                        table(self._schema, physical + SHADOW_SUFFIX), sql.Identifier(physical)
                    )
                )
            conn.execute(sql.SQL("DELETE FROM {} WHERE view = %s").format(checkpoints), (view,))
            conn.execute(
                sql.SQL("UPDATE {} SET view = %s WHERE view = %s").format(checkpoints), (view, shadow_of(view))
            )
