"""One tenant's replay jobs in the store: creating a job with its items and its ReplayRequested event in one
transaction, and moving items along (queued, claimed, sent with their MessageReplayed event, or back to
pending with their error). docs/replay.md tells the whole story; migration tenant/0011 holds the tables.

The messages a job matches are chosen by a statement the messages view writes (`{messages}` placeholder,
`%s` values, as for `TenantViews.fetch`): the store does not know the view's columns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from eventstore.errors import EventStoreError, InvalidInput
from eventstore.models import NewEvent, StreamState
from eventstore.settings import Settings
from eventstore.store.append_events import append_events
from eventstore.store.connection import StorePool, run
from eventstore.store.schema import table
from eventstore.store.streams import AUDIT_STREAM_ID
from eventstore.tenancy import TenantPlacement

REPLAY_JOBS = "replay_jobs"
REPLAY_ITEMS = "replay_items"
_ONE_ACTIVE = "replay_items_one_active"


class NothingToReplay(InvalidInput):
    """The filter matched no message."""


class ConfirmationRequired(EventStoreError):
    """A bulk replay matched more messages than the deployment lets a job replay without `confirm`."""

    def __init__(self, matched: int, limit: int) -> None:
        super().__init__(
            f"the filter matches {matched} messages, more than {limit} (EVENTSTORE_REPLAY_CONFIRM_OVER): "
            "look at the dry run, then send the same request with confirm: true"
        )
        self.matched, self.limit = matched, limit


class ReplayOverlap(EventStoreError):
    """Some of the messages are already in an unfinished job: a second job would send them twice."""

    def __init__(self, jobs: Sequence[UUID]) -> None:
        named = ", ".join(str(j) for j in jobs) or "another job"
        super().__init__(
            f"some of these messages are already being replayed by job {named}: wait for it to finish or "
            "cancel it first"
        )
        self.jobs = list(jobs)


class UnknownReplayJob(EventStoreError, LookupError):
    def __init__(self, job_id: UUID) -> None:
        super().__init__(f"no replay job {job_id} in this tenant")
        self.job_id = job_id


class ReplayJobRow(NamedTuple):
    job_id: UUID
    kind: str
    filter: dict[str, Any]
    reason: str
    requested_by: str
    target: str
    state: str
    paused_reason: str | None
    matched: int
    sent: int
    rate: float
    canary: int | None
    canary_checked: bool
    max_failure_rate: float | None
    last_error: str | None
    last_error_at: datetime | None
    created_at: datetime
    finished_at: datetime | None


class ReplayItemRow(NamedTuple):
    job_id: UUID
    position: int
    event_id: UUID
    replay_id: UUID
    state: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    queued_at: datetime | None
    sent_at: datetime | None


_JOB_COLUMNS = (
    "job_id, kind, filter, reason, requested_by, target, state, paused_reason, matched, sent, rate, canary,"
    " canary_checked, max_failure_rate, last_error, last_error_at, created_at, finished_at"
)
_ITEM_COLUMNS = (
    "job_id, position, event_id, replay_id, state, attempts, last_error, next_attempt_at, queued_at, sent_at"
)


@dataclass(frozen=True)
class NewReplayJob:
    job_id: UUID
    kind: str
    filter: Mapping[str, Any]
    reason: str
    requested_by: str
    target: str
    rate: float
    canary: int | None = None
    max_failure_rate: float | None = None


@dataclass(frozen=True)
class ItemCounts:
    pending: int = 0
    queued: int = 0
    sending: int = 0
    sent: int = 0
    cancelled: int = 0
    failing: int = 0
    """Items whose last attempt failed and that wait for their next one."""


def _job(row: Sequence[Any]) -> ReplayJobRow:
    return ReplayJobRow(*row)


class TenantReplays:
    """One tenant's replay jobs. Obtain one with `EventStore.replays(tenant_id)`."""

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

    def _render(self, tables: Mapping[str, str], statement: str) -> sql.Composed:
        return sql.SQL(statement).format(**{name: self._t(physical) for name, physical in tables.items()})

    def _append_audit(self, conn: psycopg.Connection[Any], event: NewEvent) -> None:
        append_events(
            conn,
            self._schema,
            AUDIT_STREAM_ID,
            [event],
            StreamState.ANY,
            inline_limit=self._settings.inline_payload_limit,
            max_batch=self._settings.max_batch_size,
        )

    # -- matching ------------------------------------------------------------------------------------------

    def count(self, tables: Mapping[str, str], select: str, params: Sequence[Any]) -> int:
        """How many messages `select` (a statement yielding `event_id`s) matches."""
        statement = sql.SQL("SELECT count(*) FROM ({}) AS matched").format(self._render(tables, select))
        row = run(self._pool, lambda conn: conn.execute(statement, params).fetchone())
        return int(row[0]) if row else 0

    def create_job(
        self,
        job: NewReplayJob,
        tables: Mapping[str, str],
        select: str,
        params: Sequence[Any],
        requested: NewEvent,
        *,
        confirm_over: int | None,
    ) -> ReplayJobRow:
        """Create `job` over the messages `select` yields (ordered: positions follow its order), and append
        `requested` (its ReplayRequested event) to the audit stream, all in one transaction.

        Raises `NothingToReplay`, `ConfirmationRequired` (more than `confirm_over` matched) or
        `ReplayOverlap`; then nothing is stored."""
        items = sql.SQL(
            "INSERT INTO {items} (job_id, position, event_id, replay_id, state)"
            " SELECT %s, row_number() OVER (), event_id, gen_random_uuid(), 'pending' FROM ({select}) AS matched"
        ).format(items=self._t(REPLAY_ITEMS), select=self._render(tables, select))

        def create(conn: psycopg.Connection[Any]) -> ReplayJobRow:
            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {jobs} (job_id, kind, filter, reason, requested_by, target, state, matched,"
                            " rate, canary, max_failure_rate) VALUES (%s, %s, %s, %s, %s, %s, 'running', 1, %s, %s, %s)"
                        ).format(jobs=self._t(REPLAY_JOBS)),
                        (
                            job.job_id,
                            job.kind,
                            Jsonb(dict(job.filter)),
                            job.reason,
                            job.requested_by,
                            job.target,
                            job.rate,
                            job.canary,
                            job.max_failure_rate,
                        ),
                    )
                    matched = conn.execute(items, [job.job_id, *params]).rowcount
                    if matched == 0:
                        raise NothingToReplay("no message matches the filter; nothing was started", field="filter")
                    if confirm_over is not None and matched > confirm_over:
                        raise ConfirmationRequired(matched, confirm_over)
                    row = conn.execute(
                        sql.SQL("UPDATE {jobs} SET matched = %s WHERE job_id = %s RETURNING " + _JOB_COLUMNS).format(
                            jobs=self._t(REPLAY_JOBS)
                        ),
                        (matched, job.job_id),
                    ).fetchone()
                    assert row is not None
                    self._append_audit(conn, _with_matched(requested, matched))
                    return _job(row)
            except psycopg.errors.UniqueViolation as exc:
                if exc.diag.constraint_name != _ONE_ACTIVE:
                    raise
                raise ReplayOverlap(self._overlapping(conn, tables, select, params)) from None

        return run(self._pool, create, writes=True)

    def _overlapping(
        self, conn: psycopg.Connection[Any], tables: Mapping[str, str], select: str, params: Sequence[Any]
    ) -> list[UUID]:
        rows = conn.execute(
            sql.SQL(
                "SELECT DISTINCT job_id FROM {items} WHERE state IN ('pending', 'queued', 'sending')"
                " AND event_id IN (SELECT event_id FROM ({select}) AS matched) LIMIT 10"
            ).format(items=self._t(REPLAY_ITEMS), select=self._render(tables, select)),
            params,
        ).fetchall()
        return [r[0] for r in rows]

    # -- reading -------------------------------------------------------------------------------------------

    def job(self, job_id: UUID) -> ReplayJobRow | None:
        statement = sql.SQL("SELECT " + _JOB_COLUMNS + " FROM {jobs} WHERE job_id = %s").format(
            jobs=self._t(REPLAY_JOBS)
        )
        row = run(self._pool, lambda conn: conn.execute(statement, (job_id,)).fetchone())
        return _job(row) if row else None

    def jobs(self, *, before: tuple[datetime, UUID] | None = None, limit: int = 50) -> list[ReplayJobRow]:
        """Jobs newest first, after the keyset `before`."""
        where = "WHERE (created_at, job_id) < (%s, %s)" if before else ""
        statement = sql.SQL(
            "SELECT " + _JOB_COLUMNS + " FROM {jobs} " + where + " ORDER BY created_at DESC, job_id DESC LIMIT %s"
        ).format(jobs=self._t(REPLAY_JOBS))
        params: list[Any] = [*before, limit] if before else [limit]
        return [_job(r) for r in run(self._pool, lambda conn: conn.execute(statement, params).fetchall())]

    def active_jobs(self) -> list[ReplayJobRow]:
        statement = sql.SQL(
            "SELECT " + _JOB_COLUMNS + " FROM {jobs} WHERE state IN ('running', 'paused') ORDER BY created_at"
        ).format(jobs=self._t(REPLAY_JOBS))
        return [_job(r) for r in run(self._pool, lambda conn: conn.execute(statement).fetchall())]

    def counts(self, job_id: UUID) -> ItemCounts:
        statement = sql.SQL(
            "SELECT state, count(*), count(*) FILTER (WHERE last_error IS NOT NULL AND state = 'pending')"
            " FROM {items} WHERE job_id = %s GROUP BY state"
        ).format(items=self._t(REPLAY_ITEMS))
        rows = run(self._pool, lambda conn: conn.execute(statement, (job_id,)).fetchall())
        found = {state: int(n) for state, n, _ in rows}
        failing = sum(int(f) for _, _, f in rows)
        return ItemCounts(**found, failing=failing)

    def items(self, job_id: UUID, *, after: int = 0, limit: int = 100) -> list[ReplayItemRow]:
        statement = sql.SQL(
            "SELECT " + _ITEM_COLUMNS + " FROM {items} WHERE job_id = %s AND position > %s ORDER BY position LIMIT %s"
        ).format(items=self._t(REPLAY_ITEMS))
        rows = run(self._pool, lambda conn: conn.execute(statement, (job_id, after, limit)).fetchall())
        return [ReplayItemRow(*r) for r in rows]

    def item(self, job_id: UUID, position: int) -> ReplayItemRow | None:
        statement = sql.SQL("SELECT " + _ITEM_COLUMNS + " FROM {items} WHERE job_id = %s AND position = %s").format(
            items=self._t(REPLAY_ITEMS)
        )
        row = run(self._pool, lambda conn: conn.execute(statement, (job_id, position)).fetchone())
        return ReplayItemRow(*row) if row else None

    # -- moving items along ----------------------------------------------------------------------------------

    def due(self, job_id: UUID, limit: int, *, stale_seconds: float) -> list[ReplayItemRow]:
        """Items to put on the replays queue now: pending ones whose next attempt is due, and queued or
        claimed ones that have waited longer than `stale_seconds` (their queue message was lost, or the
        forwarder died holding them), in position order."""
        statement = sql.SQL(
            "SELECT " + _ITEM_COLUMNS + " FROM {items} WHERE job_id = %s AND ("
            " (state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= now()))"
            " OR (state = 'queued' AND queued_at < now() - make_interval(secs => %s))"
            " OR (state = 'sending' AND claimed_until < now()))"
            " ORDER BY position LIMIT %s"
        ).format(items=self._t(REPLAY_ITEMS))
        rows = run(self._pool, lambda conn: conn.execute(statement, (job_id, stale_seconds, limit)).fetchall())
        return [ReplayItemRow(*r) for r in rows]

    def canary_passed(self, job_id: UUID) -> None:
        statement = sql.SQL("UPDATE {jobs} SET canary_checked = true WHERE job_id = %s").format(
            jobs=self._t(REPLAY_JOBS)
        )
        run(self._pool, lambda conn: conn.execute(statement, (job_id,)), writes=True)

    def mark_queued(self, job_id: UUID, positions: Sequence[int]) -> None:
        statement = sql.SQL(
            "UPDATE {items} SET state = 'queued', queued_at = now(), claimed_until = NULL"
            " WHERE job_id = %s AND position = ANY(%s) AND (state IN ('pending', 'queued')"
            # Never an item a forwarder holds: it would lose the record of a send under way.
            " OR (state = 'sending' AND claimed_until < now()))"
        ).format(items=self._t(REPLAY_ITEMS))
        run(self._pool, lambda conn: conn.execute(statement, (job_id, list(positions))), writes=True)

    def claim(self, job_id: UUID, position: int, seconds: float) -> ReplayItemRow | None:
        """Take one item to send it, for `seconds` (see `claim_many`)."""
        found = self.claim_many(job_id, [position], seconds)
        return found[0] if found else None

    def claim_many(self, job_id: UUID, positions: Sequence[int], seconds: float) -> list[ReplayItemRow]:
        """Take the items at `positions` to send them, for `seconds`, in position order: those waiting to be
        sent; not one already sent, cancelled or claimed by another forwarder, nor any while the job is not
        running."""
        statement = sql.SQL(
            "UPDATE {items} AS i SET state = 'sending', claimed_until = now() + make_interval(secs => %s)"
            " FROM {jobs} AS j WHERE i.job_id = %s AND i.position = ANY(%s) AND j.job_id = i.job_id"
            " AND j.state = 'running' AND (i.state IN ('pending', 'queued')"
            " OR (i.state = 'sending' AND i.claimed_until < now()))"
            " RETURNING " + ", ".join(f"i.{c.strip()}" for c in _ITEM_COLUMNS.split(","))
        ).format(items=self._t(REPLAY_ITEMS), jobs=self._t(REPLAY_JOBS))
        rows = run(
            self._pool,
            lambda conn: conn.execute(statement, (seconds, job_id, sorted(set(positions)))).fetchall(),
            writes=True,
        )
        return sorted((ReplayItemRow(*r) for r in rows), key=lambda item: item.position)

    def mark_sent(self, item: ReplayItemRow, replayed: NewEvent, finished: NewEvent | None = None) -> bool:
        """One item was sent (see `mark_sent_many`)."""
        return self.mark_sent_many(item.job_id, [(item, replayed)], finished)

    def mark_sent_many(
        self, job_id: UUID, sent: Sequence[tuple[ReplayItemRow, NewEvent]], finished: NewEvent | None = None
    ) -> bool:
        """Items of job `job_id` were sent: mark them, count them in the job and append each one's
        MessageReplayed event, in one transaction. An item whose claim ran out and was taken by another
        forwarder is left to that one (it records its own send). When they were the job's last unsent items,
        the job finishes too and `finished` (its ReplayJobChanged event) is appended. True when this call
        finished the job."""
        events = {item.position: event for item, event in sent}

        def mark(conn: psycopg.Connection[Any]) -> bool:
            with conn.transaction():
                marked = conn.execute(
                    sql.SQL(
                        "UPDATE {items} SET state = 'sent', sent_at = now(), claimed_until = NULL, last_error = NULL,"
                        " attempts = attempts + 1 WHERE job_id = %s AND position = ANY(%s) AND state = 'sending'"
                        " RETURNING position"
                    ).format(items=self._t(REPLAY_ITEMS)),
                    (job_id, sorted(events)),
                ).fetchall()
                if not marked:
                    return False
                conn.execute(
                    sql.SQL("UPDATE {jobs} SET sent = sent + %s WHERE job_id = %s").format(jobs=self._t(REPLAY_JOBS)),
                    (len(marked), job_id),
                )
                append_events(
                    conn,
                    self._schema,
                    AUDIT_STREAM_ID,
                    [events[position] for (position,) in sorted(marked)],
                    StreamState.ANY,
                    inline_limit=self._settings.inline_payload_limit,
                    max_batch=max(self._settings.max_batch_size, len(marked)),
                )
                if finished is None:
                    return False
                return self._finish_if_done(conn, job_id, finished)

        return run(self._pool, mark, writes=True)

    def _finish_if_done(self, conn: psycopg.Connection[Any], job_id: UUID, finished: NewEvent) -> bool:
        left = conn.execute(
            sql.SQL(
                "SELECT EXISTS (SELECT 1 FROM {items} WHERE job_id = %s AND state IN ('pending', 'queued', 'sending'))"
            ).format(items=self._t(REPLAY_ITEMS)),
            (job_id,),
        ).fetchone()
        if left and left[0]:
            return False
        done = conn.execute(
            sql.SQL(
                "UPDATE {jobs} SET state = 'finished', finished_at = now(), paused_reason = NULL"
                " WHERE job_id = %s AND state IN ('running', 'paused')"
            ).format(jobs=self._t(REPLAY_JOBS)),
            (job_id,),
        ).rowcount
        if done:
            self._append_audit(conn, finished)
        return bool(done)

    def finish_if_done(self, job_id: UUID, finished: NewEvent) -> bool:
        def finish(conn: psycopg.Connection[Any]) -> bool:
            with conn.transaction():
                return self._finish_if_done(conn, job_id, finished)

        return run(self._pool, finish, writes=True)

    def mark_failed(self, item: ReplayItemRow, error: str, next_attempt_at: datetime) -> None:
        """The send failed: the item waits for its next attempt (never dropped), and its job shows the error."""

        def mark(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute(
                    sql.SQL(
                        "UPDATE {items} SET state = 'pending', attempts = attempts + 1, last_error = %s,"
                        " next_attempt_at = %s, claimed_until = NULL WHERE job_id = %s AND position = %s"
                        " AND state = 'sending'"
                    ).format(items=self._t(REPLAY_ITEMS)),
                    (error, next_attempt_at, item.job_id, item.position),
                )
                conn.execute(
                    sql.SQL("UPDATE {jobs} SET last_error = %s, last_error_at = now() WHERE job_id = %s").format(
                        jobs=self._t(REPLAY_JOBS)
                    ),
                    (error, item.job_id),
                )

        run(self._pool, mark, writes=True)

    def release(self, item: ReplayItemRow) -> None:
        """Give back a claimed item unsent (see `release_many`)."""
        self.release_many(item.job_id, [item.position])

    def release_many(self, job_id: UUID, positions: Sequence[int], next_attempt_at: datetime | None = None) -> None:
        """Give back claimed items unsent: pending again, no attempt counted, due at `next_attempt_at` (now when
        None). For items a forwarder did not get to: its job paused, its claim nearly out, or the router down."""
        statement = sql.SQL(
            "UPDATE {items} SET state = 'pending', claimed_until = NULL, next_attempt_at = %s"
            " WHERE job_id = %s AND position = ANY(%s) AND state = 'sending'"
        ).format(items=self._t(REPLAY_ITEMS))
        run(
            self._pool,
            lambda conn: conn.execute(statement, (next_attempt_at, job_id, sorted(set(positions)))),
            writes=True,
        )

    def change(self, job_id: UUID, to: str, event: NewEvent, *, reason: str | None = None) -> ReplayJobRow:
        """Pause, resume or cancel a job, appending `event` (its ReplayJobChanged) in the same transaction.
        Cancelling cancels its unsent items. Raises `UnknownReplayJob`, or `InvalidInput` when the job is not
        in a state it can go `to` from."""
        allowed = {"paused": ("running",), "running": ("paused",), "cancelled": ("running", "paused")}[to]

        def change(conn: psycopg.Connection[Any]) -> ReplayJobRow:
            with conn.transaction():
                current = conn.execute(
                    sql.SQL("SELECT state FROM {jobs} WHERE job_id = %s FOR UPDATE").format(jobs=self._t(REPLAY_JOBS)),
                    (job_id,),
                ).fetchone()
                if current is None:
                    raise UnknownReplayJob(job_id)
                if current[0] not in allowed:
                    raise InvalidInput(f"replay job {job_id} is {current[0]}; it cannot become {to}", field="state")
                finished = "now()" if to == "cancelled" else "NULL"
                row = conn.execute(
                    sql.SQL(
                        "UPDATE {jobs} SET state = %s, paused_reason = %s, finished_at = " + finished
                        + (", canary_checked = true" if to == "running" else "")
                        + " WHERE job_id = %s RETURNING " + _JOB_COLUMNS
                    ).format(jobs=self._t(REPLAY_JOBS)),
                    (to, reason if to == "paused" else None, job_id),
                ).fetchone()  # fmt: skip
                if to == "cancelled":
                    conn.execute(
                        sql.SQL(
                            "UPDATE {items} SET state = 'cancelled', claimed_until = NULL WHERE job_id = %s"
                            " AND state IN ('pending', 'queued')"
                        ).format(items=self._t(REPLAY_ITEMS)),
                        (job_id,),
                    )
                self._append_audit(conn, event)
                assert row is not None
                return _job(row)

        return run(self._pool, change, writes=True)

    def outcomes(
        self, job_id: UUID, tables: Mapping[str, str], statement: str, *, first: int | None = None
    ) -> list[tuple[Any, ...]]:
        """Rows of `statement` (a view's statement over `{items}` joined to its `tables`, `%s` for the job id
        then for `first`, the positions it looks at): how the replays of a job's items went."""
        rendered = self._render({**tables, "items": REPLAY_ITEMS}, statement)
        params: list[Any] = [job_id, first if first is not None else 2**31 - 1]
        return run(self._pool, lambda conn: conn.execute(rendered, params).fetchall())


def _with_matched(event: NewEvent, matched: int) -> NewEvent:
    """The ReplayRequested event with the number of messages the job matched, known only once inserted."""
    payload = json.loads(event.payload)
    payload["matched"] = matched
    return event.model_copy(update={"payload": json.dumps(payload, separators=(",", ":")).encode()})
