"""An alert outbox: what each channel must be told, once. A tenant's lives in its schema (`TenantAlerts`,
tenant/0014); the deployment's own (queue dead letters, which may name no tenant) in the control schema
(control/0004). Both have the same table and are sent by the same sender (eventstore/alerts/sender.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from eventstore.store.connection import StorePool, run
from eventstore.store.schema import table

ALERT_OUTBOX = "alert_outbox"


@dataclass(frozen=True)
class Notice:
    """A notification to queue: `notice_key` makes it once per channel; notices with the same `ordering_key`
    go out in the order they were queued."""

    channel: str
    notice_key: str
    ordering_key: str
    kind: str
    body: dict[str, Any]


class OutboxRow(NamedTuple):
    id: int
    channel: str
    notice_key: str
    ordering_key: str
    kind: str
    body: dict[str, Any]
    state: str
    attempts: int
    created_at: datetime


_OUTBOX_COLUMNS = "id, channel, notice_key, ordering_key, kind, body, state, attempts, created_at"


class AlertOutbox:
    """The outbox in `schema`; `tenant_id` is its tenant, or None for the deployment's own."""

    def __init__(self, schema: str, pool: StorePool, tenant_id: str | None) -> None:
        self._schema = schema
        self._pool = pool
        self._outbox = table(schema, ALERT_OUTBOX)
        self._owner = tenant_id

    @property
    def tenant_id(self) -> str | None:
        return self._owner

    def _enqueue(self, conn: psycopg.Connection[Any], notices: Sequence[Notice]) -> int:
        queued = 0
        for notice in notices:
            # A notice already queued under its key is the same notice (a re-run, a second evaluator): the
            # key is what "once" means here, so finding it is the answer, not a loss.
            row = conn.execute(
                sql.SQL(
                    "INSERT INTO {outbox} (channel, notice_key, ordering_key, kind, body) VALUES (%s, %s, %s, %s, %s)"
                    " ON CONFLICT (channel, notice_key) DO NOTHING RETURNING id"
                ).format(outbox=self._outbox),
                (notice.channel, notice.notice_key, notice.ordering_key, notice.kind, Jsonb(notice.body)),
            ).fetchone()
            queued += row is not None
        return queued

    def enqueue(self, notices: Sequence[Notice]) -> int:
        """Queue `notices` (each once per channel and key); how many were new."""

        def enqueue(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction():
                return self._enqueue(conn, notices)

        return run(self._pool, enqueue, writes=True)

    def claim(self, channel: str, limit: int, seconds: float) -> list[OutboxRow]:
        """Take up to `limit` due notifications of `channel` to send them, for `seconds`, oldest first; never
        one whose ordering key has an earlier one unsent, nor one another sender holds."""
        outbox = self._outbox
        statement = sql.SQL(
            "WITH due AS MATERIALIZED (SELECT c.id FROM {outbox} AS c WHERE c.channel = %s"
            " AND ((c.state = 'pending' AND (c.next_attempt_at IS NULL OR c.next_attempt_at <= now()))"
            " OR (c.state = 'sending' AND c.claimed_until < now()))"
            " AND NOT EXISTS (SELECT 1 FROM {outbox} AS e WHERE e.channel = c.channel"
            " AND e.ordering_key = c.ordering_key AND e.id < c.id AND e.state IN ('pending', 'sending'))"
            " ORDER BY c.id LIMIT %s FOR UPDATE SKIP LOCKED)"
            " UPDATE {outbox} AS o SET state = 'sending', claimed_until = now() + make_interval(secs => %s)"
            " FROM due WHERE o.id = due.id"
            " RETURNING " + ", ".join(f"o.{c.strip()}" for c in _OUTBOX_COLUMNS.split(","))
        ).format(outbox=outbox)
        rows = run(self._pool, lambda conn: conn.execute(statement, (channel, limit, seconds)).fetchall(), writes=True)
        return sorted((OutboxRow(*r) for r in rows), key=lambda row: row.id)

    def due(self, channel: str) -> int:
        """How many notifications of `channel` are due now."""
        statement = sql.SQL(
            "SELECT count(*) FROM {outbox} WHERE channel = %s AND ((state = 'pending' AND (next_attempt_at IS NULL"
            " OR next_attempt_at <= now())) OR (state = 'sending' AND claimed_until < now()))"
        ).format(outbox=self._outbox)
        row = run(self._pool, lambda conn: conn.execute(statement, (channel,)).fetchone())
        return int(row[0]) if row else 0

    def mark_sent(self, ids: Sequence[int], sent_as: str) -> None:
        statement = sql.SQL(
            "UPDATE {outbox} SET state = 'sent', sent_at = now(), sent_as = %s, claimed_until = NULL,"
            " attempts = attempts + 1, last_error = NULL WHERE id = ANY(%s) AND state = 'sending'"
        ).format(outbox=self._outbox)
        run(self._pool, lambda conn: conn.execute(statement, (sent_as, list(ids))), writes=True)

    def mark_failed(self, ids: Sequence[int], error: str, next_attempt_at: datetime) -> None:
        """Not sent: back to pending with the error, due again at `next_attempt_at`."""
        statement = sql.SQL(
            "UPDATE {outbox} SET state = 'pending', attempts = attempts + 1, last_error = %s,"
            " next_attempt_at = %s, claimed_until = NULL WHERE id = ANY(%s) AND state = 'sending'"
        ).format(outbox=self._outbox)
        run(self._pool, lambda conn: conn.execute(statement, (error, next_attempt_at, list(ids))), writes=True)

    def release(self, ids: Sequence[int], next_attempt_at: datetime) -> None:
        """Give back claimed notifications not tried (their channel is down): pending, due at
        `next_attempt_at`, no attempt counted."""
        statement = sql.SQL(
            "UPDATE {outbox} SET state = 'pending', next_attempt_at = %s, claimed_until = NULL"
            " WHERE id = ANY(%s) AND state = 'sending'"
        ).format(outbox=self._outbox)
        run(self._pool, lambda conn: conn.execute(statement, (next_attempt_at, list(ids))), writes=True)

    def mark_refused(self, ids: Sequence[int], error: str) -> None:
        """The channel refused them for good (a wrong key, a malformed body): kept with the error, shown in
        health, not retried."""
        statement = sql.SQL(
            "UPDATE {outbox} SET state = 'refused', attempts = attempts + 1, last_error = %s, claimed_until = NULL"
            " WHERE id = ANY(%s) AND state = 'sending'"
        ).format(outbox=self._outbox)
        run(self._pool, lambda conn: conn.execute(statement, (error, list(ids))), writes=True)

    def unsent(self) -> int:
        """Notifications not yet sent (pending or being sent), all channels."""
        statement = sql.SQL("SELECT count(*) FROM {outbox} WHERE state IN ('pending', 'sending')").format(
            outbox=self._outbox
        )
        row = run(self._pool, lambda conn: conn.execute(statement).fetchone())
        return int(row[0]) if row else 0

    def outbox(self, channel: str | None = None, limit: int = 1000) -> list[tuple[OutboxRow, str | None]]:
        """The latest `limit` notifications, oldest first, with each one's last error."""
        where = sql.SQL(" WHERE channel = %s") if channel else sql.SQL("")
        statement = sql.SQL(
            "SELECT " + _OUTBOX_COLUMNS + ", last_error FROM {outbox}{where} ORDER BY id DESC LIMIT %s"
        ).format(outbox=self._outbox, where=where)
        params: tuple[Any, ...] = (channel, limit) if channel else (limit,)
        rows = run(self._pool, lambda conn: conn.execute(statement, params).fetchall())
        return [(OutboxRow(*r[:-1]), r[-1]) for r in reversed(rows)]
