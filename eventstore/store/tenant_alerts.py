"""One tenant's alert state in the store: the figures of the failure-rate window (from the executions view),
the incidents the rule opened and resolved, and the outbox of notifications each channel must be sent once.
Migration tenant/0014 holds the tables; docs/alerts.md tells the story.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from eventstore.settings import Settings
from eventstore.store.connection import StorePool, run
from eventstore.store.schema import table
from eventstore.tenancy import TenantPlacement

ALERT_INCIDENTS = "alert_incidents"
ALERT_OUTBOX = "alert_outbox"
EXECUTIONS_TABLE = "view_trace_executions"
"""The executions view's table (eventstore/views/traces.py): the failure-rate window is counted there, and
the dead letters are found there."""
MESSAGES_TABLE = "view_messages"
INSTANCES_TABLE = "view_instances"
"""The instances view's table: an instance's entry into the faulted state is its `faulted_at`."""


@dataclass(frozen=True)
class WindowFigures:
    """Executions of one workflow that ended in the window, and how many of them failed."""

    workflow_id: str | None
    executions: int
    failed: int
    last_failed_at: datetime | None


class IncidentRow(NamedTuple):
    dedup_key: str
    rule: str
    subject: str
    state: str
    opened_at: datetime
    resolved_at: datetime | None
    figures: dict[str, Any]
    evaluated_at: datetime


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


_INCIDENT_COLUMNS = "dedup_key, rule, subject, state, opened_at, resolved_at, figures, evaluated_at"
_OUTBOX_COLUMNS = "id, channel, notice_key, ordering_key, kind, body, state, attempts, created_at"


class TenantAlerts:
    """One tenant's incidents and outbox. Obtain one with `EventStore.alerts(tenant_id)`."""

    def __init__(self, placement: TenantPlacement, pool: StorePool, settings: Settings) -> None:
        self.placement = placement
        self._schema = placement.schema_name
        self._pool = pool
        self._settings = settings

    @property
    def tenant_id(self) -> str:
        return self.placement.tenant_id

    def _t(self, name: str) -> sql.Composable:
        return table(self._schema, name)

    # -- the window ----------------------------------------------------------------------------------------

    def window(self, since: datetime) -> list[WindowFigures]:
        """Per workflow, the executions started since `since` that have ended, and the failed among them
        (dead-lettered ones are failed ones)."""
        statement = sql.SQL(
            "SELECT workflow_id, count(*), count(*) FILTER (WHERE status = 'failed'),"
            " max(completed_at) FILTER (WHERE status = 'failed')"
            " FROM {executions} WHERE started_at >= %s AND status IN ('succeeded', 'failed')"
            " GROUP BY workflow_id ORDER BY workflow_id NULLS FIRST"
        ).format(executions=self._t(EXECUTIONS_TABLE))
        rows = run(self._pool, lambda conn: conn.execute(statement, (since,)).fetchall())
        return [WindowFigures(r[0], int(r[1]), int(r[2]), r[3]) for r in rows]

    # -- incidents -----------------------------------------------------------------------------------------

    def incidents(self, state: str | None = None) -> list[IncidentRow]:
        where = sql.SQL(" WHERE state = %s") if state else sql.SQL("")
        statement = sql.SQL("SELECT " + _INCIDENT_COLUMNS + " FROM {incidents}{where} ORDER BY dedup_key").format(
            incidents=self._t(ALERT_INCIDENTS), where=where
        )
        rows = run(self._pool, lambda conn: conn.execute(statement, (state,) if state else ()).fetchall())
        return [IncidentRow(*r) for r in rows]

    def open_incident(
        self, dedup_key: str, rule: str, subject: str, figures: dict[str, Any], notices: Sequence[Notice]
    ) -> bool:
        """Open the incident unless it is open already, queueing `notices` (its trigger) in the same
        transaction; True when this call opened it. Of two evaluators at once, the second waits on the row
        and then finds it open: one trigger."""

        def open_(conn: psycopg.Connection[Any]) -> bool:
            with conn.transaction():
                opened = conn.execute(
                    sql.SQL(
                        "INSERT INTO {incidents} (dedup_key, rule, subject, state, opened_at, figures)"
                        " VALUES (%s, %s, %s, 'open', now(), %s)"
                        " ON CONFLICT (dedup_key) DO UPDATE SET state = 'open', opened_at = now(),"
                        " resolved_at = NULL, figures = EXCLUDED.figures, evaluated_at = now()"
                        " WHERE {incidents}.state = 'resolved' RETURNING opened_at"
                    ).format(incidents=self._t(ALERT_INCIDENTS)),
                    (dedup_key, rule, subject, Jsonb(figures)),
                ).fetchone()
                if opened is None:
                    conn.execute(
                        sql.SQL(
                            "UPDATE {incidents} SET figures = %s, evaluated_at = now() WHERE dedup_key = %s"
                        ).format(incidents=self._t(ALERT_INCIDENTS)),
                        (Jsonb(figures), dedup_key),
                    )
                    return False
                self._enqueue(conn, notices)
                return True

        return run(self._pool, open_, writes=True)

    def resolve_incident(
        self, dedup_key: str, opened_at: datetime, figures: dict[str, Any], notices: Sequence[Notice]
    ) -> bool:
        """Resolve the incident opened at `opened_at` if it is still that one and open, queueing `notices` (its
        resolve) in the same transaction; True when this call resolved it."""

        def resolve(conn: psycopg.Connection[Any]) -> bool:
            with conn.transaction():
                resolved = conn.execute(
                    sql.SQL(
                        "UPDATE {incidents} SET state = 'resolved', resolved_at = now(), figures = %s,"
                        " evaluated_at = now() WHERE dedup_key = %s AND state = 'open' AND opened_at = %s"
                        " RETURNING dedup_key"
                    ).format(incidents=self._t(ALERT_INCIDENTS)),
                    (Jsonb(figures), dedup_key, opened_at),
                ).fetchone()
                if resolved is None:
                    return False
                self._enqueue(conn, notices)
                return True

        return run(self._pool, resolve, writes=True)

    # -- the outbox ----------------------------------------------------------------------------------------

    def _enqueue(self, conn: psycopg.Connection[Any], notices: Sequence[Notice]) -> int:
        queued = 0
        for notice in notices:
            # A notice already queued under its key is the same notice (a re-run, a second evaluator): the
            # key is what "once" means here, so finding it is the answer, not a loss.
            row = conn.execute(
                sql.SQL(
                    "INSERT INTO {outbox} (channel, notice_key, ordering_key, kind, body) VALUES (%s, %s, %s, %s, %s)"
                    " ON CONFLICT (channel, notice_key) DO NOTHING RETURNING id"
                ).format(outbox=self._t(ALERT_OUTBOX)),
                (notice.channel, notice.notice_key, notice.ordering_key, notice.kind, Jsonb(notice.body)),
            ).fetchone()
            queued += row is not None
        return queued

    def collect(self, since: datetime, channels: Sequence[str], faulted_channels: Sequence[str], admin: str) -> int:
        """Queue a notice on each of `channels` for every dead-lettered execution (the engine gave up on its
        message) and on each of `faulted_channels` for every instance that entered the faulted state, since
        `since`, that is not queued yet: a set difference against the outbox, so a notice is queued once
        whenever and however often this runs, and a view rebuilt from the start queues nothing again.
        `admin`: the tenant's admin page, for the links. How many were queued."""
        dead_letters = sql.SQL(
            "INSERT INTO {outbox} (channel, notice_key, ordering_key, kind, body)"
            " SELECT ch.channel, 'dead-letter/' || e.execution_id, 'dead-letter/' || e.execution_id, 'dead-letter',"
            " jsonb_build_object("
            "  'summary', format('Dead letter: a %%s message of workflow %%s exhausted its retries (tenant %%s)',"
            "    coalesce(m.message_type, 'unknown'), coalesce(e.workflow_id, 'unknown'), %s::text),"
            "  'group', concat_ws(' / ', 'dead letter', m.message_type, e.workflow_id),"
            "  'fields', jsonb_build_object('Tenant', %s::text, 'Message type', m.message_type,"
            "    'Workflow', e.workflow_id, 'Instance', e.workflow_instance_id, 'Attempts', m.attempts,"
            "    'Error', left(coalesce({try_jsonb}(e.error) ->> 'message', e.error), 300),"
            "    'Execution', e.execution_id),"
            "  'links', jsonb_build_array(jsonb_build_object('href', %s::text || 'executions/' || e.execution_id,"
            "    'text', 'The trace')))"
            " FROM {executions} AS e LEFT JOIN {messages} AS m ON m.event_id = e.message_event_id"
            " CROSS JOIN unnest(%s::text[]) AS ch(channel)"
            " WHERE e.dead_lettered AND e.last_event_at >= %s ORDER BY e.last_event_at, e.execution_id, ch.channel"
            " ON CONFLICT (channel, notice_key) DO NOTHING"
        ).format(
            outbox=self._t(ALERT_OUTBOX),
            executions=self._t(EXECUTIONS_TABLE),
            messages=self._t(MESSAGES_TABLE),
            try_jsonb=sql.Identifier(self._schema, "try_jsonb"),
        )
        faulted = sql.SQL(
            "INSERT INTO {outbox} (channel, notice_key, ordering_key, kind, body)"
            " SELECT ch.channel, 'faulted/' || i.workflow_instance_id || '@'"
            " || to_char(i.faulted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
            " 'faulted/' || i.workflow_instance_id, 'faulted-instance',"
            " jsonb_build_object("
            "  'summary', format('Instance %%s of workflow %%s faulted (tenant %%s)', i.workflow_instance_id,"
            "    coalesce(i.workflow_id, 'unknown'), %s::text),"
            "  'group', concat_ws(' / ', 'faulted', i.workflow_id),"
            "  'fields', jsonb_build_object('Tenant', %s::text, 'Workflow', i.workflow_id,"
            "    'Instance', i.workflow_instance_id, 'State', i.state_id, 'Error', left(i.last_error, 300)),"
            "  'links', jsonb_build_array(jsonb_build_object("
            "    'href', %s::text || 'instances/' || i.workflow_instance_id, 'text', 'The instance')),"
            "  'dedup_key', 'eventstore/' || %s::text || '/faulted/' || i.workflow_instance_id)"
            " FROM {instances} AS i CROSS JOIN unnest(%s::text[]) AS ch(channel)"
            # Every entry into the faulted state, also when the instance has left it again by now.
            " WHERE i.faulted_at >= %s"
            " ORDER BY i.faulted_at, i.workflow_instance_id, ch.channel"
            " ON CONFLICT (channel, notice_key) DO NOTHING"
        ).format(outbox=self._t(ALERT_OUTBOX), instances=self._t(INSTANCES_TABLE))
        tenant = self.tenant_id

        def collect(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction():
                queued = 0
                if channels:
                    queued += conn.execute(dead_letters, (tenant, tenant, admin, list(channels), since)).rowcount
                if faulted_channels:
                    faulted_params = (tenant, tenant, admin, tenant, list(faulted_channels), since)
                    queued += conn.execute(faulted, faulted_params).rowcount
                return queued

        return run(self._pool, collect, writes=True)

    def enqueue(self, notices: Sequence[Notice]) -> int:
        """Queue `notices` (each once per channel and key); how many were new."""

        def enqueue(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction():
                return self._enqueue(conn, notices)

        return run(self._pool, enqueue, writes=True)

    def claim(self, channel: str, limit: int, seconds: float) -> list[OutboxRow]:
        """Take up to `limit` due notifications of `channel` to send them, for `seconds`, oldest first; never
        one whose ordering key has an earlier one unsent, nor one another sender holds."""
        outbox = self._t(ALERT_OUTBOX)
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
        ).format(outbox=self._t(ALERT_OUTBOX))
        row = run(self._pool, lambda conn: conn.execute(statement, (channel,)).fetchone())
        return int(row[0]) if row else 0

    def mark_sent(self, ids: Sequence[int], sent_as: str) -> None:
        statement = sql.SQL(
            "UPDATE {outbox} SET state = 'sent', sent_at = now(), sent_as = %s, claimed_until = NULL,"
            " attempts = attempts + 1, last_error = NULL WHERE id = ANY(%s) AND state = 'sending'"
        ).format(outbox=self._t(ALERT_OUTBOX))
        run(self._pool, lambda conn: conn.execute(statement, (sent_as, list(ids))), writes=True)

    def mark_failed(self, ids: Sequence[int], error: str, next_attempt_at: datetime) -> None:
        """Not sent: back to pending with the error, due again at `next_attempt_at`."""
        statement = sql.SQL(
            "UPDATE {outbox} SET state = 'pending', attempts = attempts + 1, last_error = %s,"
            " next_attempt_at = %s, claimed_until = NULL WHERE id = ANY(%s) AND state = 'sending'"
        ).format(outbox=self._t(ALERT_OUTBOX))
        run(self._pool, lambda conn: conn.execute(statement, (error, next_attempt_at, list(ids))), writes=True)

    def release(self, ids: Sequence[int], next_attempt_at: datetime) -> None:
        """Give back claimed notifications not tried (their channel is down): pending, due at
        `next_attempt_at`, no attempt counted."""
        statement = sql.SQL(
            "UPDATE {outbox} SET state = 'pending', next_attempt_at = %s, claimed_until = NULL"
            " WHERE id = ANY(%s) AND state = 'sending'"
        ).format(outbox=self._t(ALERT_OUTBOX))
        run(self._pool, lambda conn: conn.execute(statement, (next_attempt_at, list(ids))), writes=True)

    def mark_refused(self, ids: Sequence[int], error: str) -> None:
        """The channel refused them for good (a wrong key, a malformed body): kept with the error, shown in
        health, not retried."""
        statement = sql.SQL(
            "UPDATE {outbox} SET state = 'refused', attempts = attempts + 1, last_error = %s, claimed_until = NULL"
            " WHERE id = ANY(%s) AND state = 'sending'"
        ).format(outbox=self._t(ALERT_OUTBOX))
        run(self._pool, lambda conn: conn.execute(statement, (error, list(ids))), writes=True)

    def unsent(self) -> int:
        """Notifications not yet sent (pending or being sent), all channels."""
        statement = sql.SQL("SELECT count(*) FROM {outbox} WHERE state IN ('pending', 'sending')").format(
            outbox=self._t(ALERT_OUTBOX)
        )
        row = run(self._pool, lambda conn: conn.execute(statement).fetchone())
        return int(row[0]) if row else 0

    def outbox(self, channel: str | None = None, limit: int = 1000) -> list[tuple[OutboxRow, str | None]]:
        """The latest `limit` notifications, oldest first, with each one's last error."""
        where = sql.SQL(" WHERE channel = %s") if channel else sql.SQL("")
        statement = sql.SQL(
            "SELECT " + _OUTBOX_COLUMNS + ", last_error FROM {outbox}{where} ORDER BY id DESC LIMIT %s"
        ).format(outbox=self._t(ALERT_OUTBOX), where=where)
        params: tuple[Any, ...] = (channel, limit) if channel else (limit,)
        rows = run(self._pool, lambda conn: conn.execute(statement, params).fetchall())
        return [(OutboxRow(*r[:-1]), r[-1]) for r in reversed(rows)]
