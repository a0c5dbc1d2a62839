"""The failure counts view: per UTC hour, workflow and message type, how many executions started,
succeeded and failed, and how many were dead-lettered; and the read the API serves from it (daily counts
are the sum of the hours at read time).

An execution counts once it has a start: `started` in the hour of its start, `succeeded` or `failed` in
the hour of its end, `deadLettered` too when that end dead-lettered its message. It is counted under its
workflow (the least workflow id its events name, else its message's) and its message's type (the
trigger's name; '' while the message is not recorded). Each execution keeps what it added (`counted_*`),
so when a late event moves it (its start arrives, its message is recorded) the view takes that away and
adds the new contribution: the counts are always the sum over the executions as they stand, whatever the
order of arrival.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

from eventstore.models import RecordedEvent
from eventstore.store import TenantViews, ViewWriter
from eventstore.views.messages import messages_in
from eventstore.views.traces import EXECUTION_EVENTS, FAILED, SUCCEEDED, RunSummary, trace_facts
from eventstore.views.view import View

TABLES = {
    "counts": "view_failure_counts",
    "executions": "view_failure_executions",
    "messages": "view_failure_messages",
}
HOUR, DAY = "hour", "day"
_STEP = {HOUR: timedelta(hours=1), DAY: timedelta(days=1)}


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class _Counted(NamedTuple):
    """What one execution adds to the counts."""

    workflow_id: str
    message_type: str
    started: datetime
    ended: datetime | None
    outcome: str | None
    dead_lettered: bool


_COUNTED_COLUMNS = "counted_workflow, counted_type, counted_started, counted_ended, counted_outcome, counted_dead"


def _counted_of(row: Sequence[Any]) -> _Counted | None:
    workflow, message_type, started, ended, outcome, dead = row
    if workflow is None or started is None:
        return None
    return _Counted(workflow, message_type, started, ended, outcome, dead)


def _contribution(run: RunSummary, messages: dict[UUID, tuple[str, str | None]]) -> _Counted | None:
    if run.started_at is None:
        return None
    message_type, message_workflow = (
        messages.get(run.message_event_id, ("", None)) if run.message_event_id else ("", None)
    )
    return _Counted(
        run.workflow_id or message_workflow or "",
        message_type,
        hour_of(run.started_at),
        hour_of(run.ended_at) if run.ended_at is not None else None,
        run.outcome,
        run.dead_lettered,
    )


Key = tuple[datetime, str, str]


def _add(deltas: dict[Key, list[int]], counted: _Counted | None, sign: int) -> None:
    if counted is None:
        return
    deltas[(counted.started, counted.workflow_id, counted.message_type)][0] += sign
    if counted.ended is not None and counted.outcome in (SUCCEEDED, FAILED):
        bucket = deltas[(counted.ended, counted.workflow_id, counted.message_type)]
        bucket[1 if counted.outcome == SUCCEEDED else 2] += sign
        if counted.outcome == FAILED and counted.dead_lettered:
            bucket[3] += sign


def _apply(writer: ViewWriter, events: Sequence[RecordedEvent]) -> None:
    messages = messages_in(events)
    touched: set[str] = set()
    if messages:
        writer.executemany(
            "INSERT INTO {messages} (event_id, message_type, workflow_id) VALUES (%s, %s, %s)"
            " ON CONFLICT (event_id) DO NOTHING",
            [(m.event_id, m.message_type, m.workflow_id) for m in messages],
        )
        waiting = writer.execute(
            "SELECT execution_id FROM {executions} WHERE message_event_id = ANY(%s)", [[m.event_id for m in messages]]
        )
        touched.update(r[0] for r in waiting)
    facts, _ = trace_facts(e for e in events if e.event_type in EXECUTION_EVENTS)
    touched.update(f.execution_id for f in facts)
    if not touched:
        return
    ids = sorted(touched)
    runs: dict[str, RunSummary] = {}
    before: dict[str, _Counted | None] = {}
    statement = (
        "SELECT " + RunSummary.COLUMNS + ", " + _COUNTED_COLUMNS + " FROM {executions} WHERE execution_id = ANY(%s)"
    )
    for row in writer.execute(statement, [ids]):
        runs[row[0]] = RunSummary.of_row(row)
        before[row[0]] = _counted_of(row[9:])
    for fact in facts:
        runs.setdefault(fact.execution_id, RunSummary(fact.execution_id)).add(fact)
    named = sorted({r.message_event_id for r in runs.values() if r.message_event_id is not None})
    known = {
        r[0]: (r[1], r[2])
        for r in (
            writer.execute(
                "SELECT event_id, message_type, workflow_id FROM {messages} WHERE event_id = ANY(%s)", [named]
            )
            if named
            else []
        )
    }
    deltas: dict[Key, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    rows = []
    for execution_id in ids:
        run = runs[execution_id]
        after = _contribution(run, known)
        _add(deltas, before.get(execution_id), -1)
        _add(deltas, after, +1)
        rows.append((*run.row(), *(after or (None, None, None, None, None, False))))
    writer.executemany(
        "INSERT INTO {executions} (" + RunSummary.COLUMNS + ", " + _COUNTED_COLUMNS + ")"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (execution_id) DO UPDATE SET message_event_id = EXCLUDED.message_event_id,"
        " workflow_id = EXCLUDED.workflow_id, start_event_id = EXCLUDED.start_event_id,"
        " started_at = EXCLUDED.started_at, end_event_id = EXCLUDED.end_event_id, ended_at = EXCLUDED.ended_at,"
        " outcome = EXCLUDED.outcome, dead_lettered = EXCLUDED.dead_lettered,"
        " counted_workflow = EXCLUDED.counted_workflow, counted_type = EXCLUDED.counted_type,"
        " counted_started = EXCLUDED.counted_started, counted_ended = EXCLUDED.counted_ended,"
        " counted_outcome = EXCLUDED.counted_outcome, counted_dead = EXCLUDED.counted_dead",
        rows,
    )
    changes = sorted((key, delta) for key, delta in deltas.items() if any(delta))
    writer.executemany(
        "INSERT INTO {counts} AS c (hour, workflow_id, message_type, started, succeeded, failed, dead_lettered)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (hour, workflow_id, message_type) DO UPDATE SET"
        " started = c.started + EXCLUDED.started, succeeded = c.succeeded + EXCLUDED.succeeded,"
        " failed = c.failed + EXCLUDED.failed, dead_lettered = c.dead_lettered + EXCLUDED.dead_lettered",
        [(*key, *delta) for key, delta in changes],
    )
    # A bucket back to nothing goes, so that the table holds the same rows whatever the order.
    writer.executemany(
        "DELETE FROM {counts} WHERE hour = %s AND workflow_id = %s AND message_type = %s"
        " AND started = 0 AND succeeded = 0 AND failed = 0 AND dead_lettered = 0",
        [key for key, _ in changes],
    )


FAILURE_COUNTS = View(
    name="failure_counts",
    tables=TABLES,
    apply=_apply,
    description="Per UTC hour, workflow and message type: executions started, succeeded and failed, "
    "messages dead-lettered.",
)


# --- reads ----------------------------------------------------------------------------------------------

MAX_BUCKETS = 10_000
"""The most buckets one read answers (it says when it stopped there)."""


class FailureBucket(NamedTuple):
    start: datetime
    workflow_id: str | None
    message_type: str | None
    started: int
    succeeded: int
    failed: int
    dead_lettered: int


def bucket_start(moment: datetime, granularity: str) -> datetime:
    """The start of the bucket holding `moment` (UTC)."""
    hour = hour_of(moment)
    return hour if granularity == HOUR else hour.replace(hour=0)


def failure_counts(
    views: TenantViews,
    *,
    granularity: str = HOUR,
    counted_from: datetime | None = None,
    counted_to: datetime | None = None,
    workflow_id: str | None = None,
    limit: int = MAX_BUCKETS,
) -> tuple[list[FailureBucket], bool]:
    """The buckets (of `granularity`) whose start is in [bucket_start(counted_from), counted_to), in time,
    workflow and message type order; and whether there were more than `limit`."""
    filters: list[str] = ["TRUE"]
    params: list[Any] = []
    if counted_from is not None:
        filters.append("hour >= %s")
        params.append(bucket_start(counted_from, granularity))
    if counted_to is not None:
        # Every hour of a bucket that starts before `counted_to`.
        end = bucket_start(counted_to, granularity)
        filters.append("hour < %s")
        params.append(end if end == counted_to else end + _STEP[granularity])
    if workflow_id is not None:
        filters.append("workflow_id = %s")
        params.append(workflow_id)
    start = "hour" if granularity == HOUR else "date_trunc('day', hour, 'UTC')"
    statement = (
        "SELECT " + start + " AS start, workflow_id, message_type, sum(started)::bigint, sum(succeeded)::bigint,"
        " sum(failed)::bigint, sum(dead_lettered)::bigint FROM {counts} WHERE " + " AND ".join(filters)
        + " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 LIMIT %s"
    )  # fmt: skip
    rows = views.fetch(TABLES, statement, [*params, limit + 1])
    buckets = [
        FailureBucket(r[0], r[1] or None, r[2] or None, int(r[3]), int(r[4]), int(r[5]), int(r[6]))
        for r in rows[:limit]
    ]
    return buckets, len(rows) > limit
