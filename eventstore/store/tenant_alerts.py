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
from eventstore.store.alert_outbox import ALERT_OUTBOX, AlertOutbox, Notice
from eventstore.store.connection import StorePool, run
from eventstore.store.schema import FEED_DEAD_LETTERS, table
from eventstore.tenancy import TenantPlacement

ALERT_INCIDENTS = "alert_incidents"
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


_INCIDENT_COLUMNS = "dedup_key, rule, subject, state, opened_at, resolved_at, figures, evaluated_at"


class TenantAlerts(AlertOutbox):
    """One tenant's incidents and outbox. Obtain one with `EventStore.alerts(tenant_id)`."""

    def __init__(self, placement: TenantPlacement, pool: StorePool, settings: Settings) -> None:
        super().__init__(placement.schema_name, pool, placement.tenant_id)
        self.placement = placement
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

    # -- notices from the views and the feed --------------------------------------------------------------------------

    def collect(self, since: datetime, channels: Sequence[str], faulted_channels: Sequence[str], admin: str) -> int:
        """Queue a notice on each of `channels` for every dead-lettered execution (the engine gave up on its
        message) and every event a change-feed sink refused for good (a feed dead letter), and on each of
        `faulted_channels` for every instance that entered the faulted state, since `since`, that is not
        queued yet: a set difference against the outbox, so a notice is queued once
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
        feed_dead_letters = sql.SQL(
            "INSERT INTO {outbox} (channel, notice_key, ordering_key, kind, body)"
            " SELECT ch.channel, 'feed-dead-letter/' || d.sink || '/' || d.event_id || '@'"
            " || to_char(d.dead_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
            " 'feed-dead-letter/' || d.sink || '/' || d.event_id, 'feed-dead-letter',"
            " jsonb_build_object("
            "  'summary', format('Change feed dead letter: %%s refused event %%s for good (tenant %%s)', d.sink,"
            "    d.event_id, %s::text),"
            "  'group', concat_ws(' / ', 'feed dead letter', d.sink, d.status),"
            "  'fields', jsonb_build_object('Tenant', %s::text, 'Sink', d.sink, 'Event', d.event_id,"
            "    'Position', d.global_position, 'Status', d.status, 'Error', left(d.reason, 300)),"
            "  'links', jsonb_build_array(jsonb_build_object("
            "    'href', %s::text || 'feed?sink=' || d.sink, 'text', 'The change feed')))"
            " FROM {letters} AS d CROSS JOIN unnest(%s::text[]) AS ch(channel)"
            # Each dead-lettering once: one redriven and refused again is dead again, with a new dead_at.
            " WHERE d.dead_at >= %s AND d.redriven_at IS NULL"
            " ORDER BY d.dead_at, d.global_position, ch.channel"
            " ON CONFLICT (channel, notice_key) DO NOTHING"
        ).format(outbox=self._t(ALERT_OUTBOX), letters=self._t(FEED_DEAD_LETTERS))
        tenant = self.tenant_id

        def collect(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction():
                queued = 0
                if channels:
                    queued += conn.execute(dead_letters, (tenant, tenant, admin, list(channels), since)).rowcount
                    queued += conn.execute(feed_dead_letters, (tenant, tenant, admin, list(channels), since)).rowcount
                if faulted_channels:
                    faulted_params = (tenant, tenant, admin, tenant, list(faulted_channels), since)
                    queued += conn.execute(faulted, faulted_params).rowcount
                return queued

        return run(self._pool, collect, writes=True)
