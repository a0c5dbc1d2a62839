"""The weekly summary's sends, one row per week in the control schema (migration control/0003): the run
that claims a week sends it; a second run, a second instance or a retried timer finds the week claimed or
sent and sends nothing. A run that died while sending leaves a claim that runs out, and the week is sent by
the next run (at least once, never silently dropped)."""

from __future__ import annotations

from datetime import date
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from eventstore.store.connection import run
from eventstore.store.schema import ALERT_REPORTS, table


class AlertReports:
    def __init__(self, pool: ConnectionPool, control_schema: str) -> None:
        self._pool = pool
        self._table = table(control_schema, ALERT_REPORTS)

    def claim(self, week_start: date, recipients: str, seconds: float) -> bool:
        """Take the week to send its summary, for `seconds`; False when it was sent or another run holds it."""
        statement = sql.SQL(
            "INSERT INTO {reports} (week_start, state, claimed_until, recipients)"
            " VALUES (%s, 'sending', now() + make_interval(secs => %s), %s)"
            " ON CONFLICT (week_start) DO UPDATE SET claimed_until = EXCLUDED.claimed_until,"
            " recipients = EXCLUDED.recipients"
            " WHERE {reports}.state = 'sending' AND {reports}.claimed_until < now() RETURNING week_start"
        ).format(reports=self._table)
        row = run(
            self._pool, lambda conn: conn.execute(statement, (week_start, seconds, recipients)).fetchone(), writes=True
        )
        return row is not None

    def mark_sent(self, week_start: date, summary: dict[str, Any]) -> None:
        statement = sql.SQL(
            "UPDATE {reports} SET state = 'sent', sent_at = now(), claimed_until = NULL, summary = %s"
            " WHERE week_start = %s"
        ).format(reports=self._table)
        run(self._pool, lambda conn: conn.execute(statement, (Jsonb(summary), week_start)), writes=True)

    def release(self, week_start: date) -> None:
        """The send failed: the next run may try at once."""
        statement = sql.SQL(
            "UPDATE {reports} SET claimed_until = now() WHERE week_start = %s AND state = 'sending'"
        ).format(reports=self._table)
        run(self._pool, lambda conn: conn.execute(statement, (week_start,)), writes=True)

    def sent(self) -> list[tuple[date, str, Any]]:
        statement = sql.SQL(
            "SELECT week_start, recipients, sent_at FROM {reports} WHERE state = 'sent' ORDER BY week_start"
        ).format(reports=self._table)
        return [(r[0], r[1], r[2]) for r in run(self._pool, lambda conn: conn.execute(statement).fetchall())]
