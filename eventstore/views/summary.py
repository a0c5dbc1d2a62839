"""A tenant's figures over a time range, read from its views: what the weekly summary email (issue 12) and
the failure pages are made of. Read only; the caller brings the views up to date first.

- Counts (executions succeeded and failed, dead letters, by message type, workflow and day) come from the
  failure counts view, which keeps them per UTC hour: an hour counts when it starts in [start, end), so
  ranges on whole hours (a week from midnight UTC) are exact.
- Failures grouped by category need each failed execution with its failing step, which SQL cannot
  fingerprint: at most `MAX_FAILURES` failed executions that ended in the range are read, with their
  failing step and message type, and grouped in Python by the `categorise` function the caller gives (the
  views may not import the alerts: `eventstore.alerts.categories.category_of` is the one alerts use).
  Past the bound the groups cover the first `MAX_FAILURES` by end time and `failures_truncated` says so;
  the counts stay exact.
- Messages received (by `received_at`), dead-lettered messages (still dead-lettered, settled in the range)
  and faulted instances (turned faulted in the range) come from the messages and instances views.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from pydantic import BaseModel, Field

from eventstore.store import TenantViews
from eventstore.views import failure_counts, instances, messages, traces
from eventstore.views.traces import ExecutionRow, StepRow

MAX_FAILURES = 10_000
"""The most failed executions one summary reads to group by category."""
TOP_GROUPS = 100
"""The most categories a summary keeps (the largest first); `group_count` counts them all."""
EXAMPLES = 10
"""How many faulted instances and dead letters a summary names (their counts are whole)."""

# One mapping over the tables of four views, under names of its own (two views call a table `executions`).
TABLES = {
    "runs": traces.TABLES["executions"],
    "steps": traces.TABLES["steps"],
    "messages": messages.TABLES["messages"],
    "counts": failure_counts.TABLES["counts"],
    "instances": instances.TABLES["instances"],
}


class Categorised(Protocol):
    """What a category offers (`eventstore.alerts.categories.Category`)."""

    @property
    def category_id(self) -> str: ...
    @property
    def message_type(self) -> str | None: ...
    @property
    def workflow_id(self) -> str | None: ...
    @property
    def step(self) -> str | None: ...
    @property
    def error_class(self) -> str: ...
    @property
    def message(self) -> str: ...


Categorise = Callable[[ExecutionRow, StepRow | None, str | None], Categorised]
"""The category of a failed execution, from its row, its failing step's row and its message's type."""


def rate(failed: int, ended: int) -> float | None:
    """The failure rate of `ended` executions, None when none ended."""
    return failed / ended if ended else None


class Counts(BaseModel):
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    dead_lettered: int = 0

    @property
    def ended(self) -> int:
        return self.succeeded + self.failed

    @property
    def failure_rate(self) -> float | None:
        return rate(self.failed, self.ended)

    @property
    def success_rate(self) -> float | None:
        return None if not self.ended else self.succeeded / self.ended

    def add(self, started: int, succeeded: int, failed: int, dead_lettered: int) -> None:
        self.started += started
        self.succeeded += succeeded
        self.failed += failed
        self.dead_lettered += dead_lettered


class Day(BaseModel):
    """One UTC day of the range."""

    day: date
    counts: Counts


class Breakdown(BaseModel):
    """The counts of one message type or one workflow (None: executions without one)."""

    key: str | None
    counts: Counts


class FailureGroup(BaseModel):
    """The failures of one category in the range."""

    category_id: str
    message_type: str | None
    workflow_id: str | None
    step: str | None
    error_class: str
    message: str
    count: int
    dead_lettered: int
    first_failed_at: datetime
    last_failed_at: datetime
    example_execution_id: str
    """The latest failure of the group."""
    example_message_event_id: UUID | None


class FaultedInstance(BaseModel):
    instance_id: str
    workflow_id: str | None
    status: str | None
    faulted_at: datetime
    last_error: str | None


class DeadLetter(BaseModel):
    event_id: UUID
    message_type: str
    workflow_id: str | None
    latest_execution_id: str | None
    dead_lettered_at: datetime


class TenantSummary(BaseModel):
    tenant_id: str
    start: datetime
    end: datetime
    messages_received: int
    totals: Counts
    days: list[Day]
    by_message_type: list[Breakdown]
    """Most failures first."""
    by_workflow: list[Breakdown]
    groups: list[FailureGroup]
    """At most `TOP_GROUPS` categories, most failures first."""
    group_count: int
    failures_read: int
    failures_truncated: bool
    """More than `MAX_FAILURES` failed executions ended in the range: the groups cover the first ones."""
    faulted_count: int
    faulted: list[FaultedInstance] = Field(default_factory=list)
    dead_letter_count: int
    dead_letters: list[DeadLetter] = Field(default_factory=list)

    @property
    def success_rate(self) -> float | None:
        return self.totals.success_rate


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("the range's bounds must be aware datetimes")
    return moment.astimezone(UTC)


def _days(start: datetime, end: datetime) -> list[date]:
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)] if end > start else []


def _counts(views: TenantViews, start: datetime, end: datetime) -> list[tuple[Any, ...]]:
    statement = (
        "SELECT workflow_id, message_type, date_trunc('day', hour, 'UTC'), sum(started)::bigint,"
        " sum(succeeded)::bigint, sum(failed)::bigint, sum(dead_lettered)::bigint FROM {counts}"
        " WHERE hour >= %s AND hour < %s GROUP BY 1, 2, 3"
    )
    return views.fetch(TABLES, statement, [start, end])


def _sorted(breakdown: dict[str | None, Counts]) -> list[Breakdown]:
    return [
        Breakdown(key=key, counts=counts)
        for key, counts in sorted(breakdown.items(), key=lambda kv: (-kv[1].failed, -kv[1].started, kv[0] or ""))
    ]


_RUN = ", ".join("e." + name for name in ExecutionRow._fields)
_STEP = ", ".join("s." + name for name in StepRow._fields)


def failed_runs(
    views: TenantViews, start: datetime, end: datetime, limit: int = MAX_FAILURES, *, latest: bool = False
) -> list[tuple[ExecutionRow, StepRow | None, str | None]]:
    """The executions that failed in [start, end) (by the time of their end), in that order, at most
    `limit`: each with its failing step (its failed step that failed last; None when none failed) and its
    message's type (None when the message is not recorded). An execution without a workflow takes its
    message's. With `latest`, the last `limit` of the range (still in end-time order)."""
    statement = (
        "SELECT " + _RUN + ", " + _STEP + ", m.message_type, m.workflow_id FROM {runs} e"
        " LEFT JOIN LATERAL (SELECT * FROM {steps} f WHERE f.execution_id = e.execution_id AND f.status = 'failed'"
        " ORDER BY f.completed_at DESC NULLS LAST, f.first_at DESC, f.step_id DESC LIMIT 1) s ON TRUE"
        " LEFT JOIN {messages} m ON m.event_id = e.message_event_id"
        " WHERE e.status = 'failed' AND e.completed_at >= %s AND e.completed_at < %s"
        + (
            " ORDER BY e.completed_at DESC, e.execution_id DESC"
            if latest
            else " ORDER BY e.completed_at, e.execution_id"
        )
        + " LIMIT %s"
    )
    out = []
    width = len(ExecutionRow._fields)
    for row in views.fetch(TABLES, statement, [start, end, limit]):
        execution = ExecutionRow(*row[:width])
        step_cells = row[width : width + len(StepRow._fields)]
        step = StepRow(*step_cells) if step_cells[0] is not None else None
        message_type, message_workflow = row[-2], row[-1]
        if execution.workflow_id is None and message_workflow is not None:
            execution = execution._replace(workflow_id=message_workflow)
        out.append((execution, step, message_type))
    return out[::-1] if latest else out


def _groups(runs: list[tuple[ExecutionRow, StepRow | None, str | None]], categorise: Categorise) -> list[FailureGroup]:
    groups: dict[str, FailureGroup] = {}
    for execution, step, message_type in runs:
        category = categorise(execution, step, message_type)
        at = execution.completed_at or execution.last_event_at
        group = groups.get(category.category_id)
        if group is None:
            groups[category.category_id] = FailureGroup(
                category_id=category.category_id,
                message_type=category.message_type,
                workflow_id=category.workflow_id,
                step=category.step,
                error_class=category.error_class,
                message=category.message,
                count=1,
                dead_lettered=int(execution.dead_lettered),
                first_failed_at=at,
                last_failed_at=at,
                example_execution_id=execution.execution_id,
                example_message_event_id=execution.message_event_id,
            )
            continue
        group.count += 1
        group.dead_lettered += int(execution.dead_lettered)
        group.first_failed_at = min(group.first_failed_at, at)
        if at >= group.last_failed_at:
            group.last_failed_at = at
            group.example_execution_id = execution.execution_id
            group.example_message_event_id = execution.message_event_id
    return sorted(groups.values(), key=lambda g: (-g.count, -g.last_failed_at.timestamp(), g.category_id))


def _faulted(views: TenantViews, start: datetime, end: datetime, limit: int) -> tuple[int, list[FaultedInstance]]:
    where = " FROM {instances} WHERE faulted_at >= %s AND faulted_at < %s"
    [(count,)] = views.fetch(TABLES, "SELECT count(*)" + where, [start, end])
    rows = views.fetch(
        TABLES,
        "SELECT workflow_instance_id, workflow_id, status, faulted_at, last_error" + where
        + " ORDER BY faulted_at DESC, workflow_instance_id LIMIT %s",
        [start, end, limit],
    )  # fmt: skip
    return int(count), [
        FaultedInstance(instance_id=r[0], workflow_id=r[1], status=r[2], faulted_at=r[3], last_error=r[4]) for r in rows
    ]


def _dead_letters(views: TenantViews, start: datetime, end: datetime, limit: int) -> tuple[int, list[DeadLetter]]:
    where = " FROM {messages} WHERE status = %s AND updated_at >= %s AND updated_at < %s"
    params = [messages.DEAD_LETTERED, start, end]
    [(count,)] = views.fetch(TABLES, "SELECT count(*)" + where, params)
    rows = views.fetch(
        TABLES,
        "SELECT event_id, message_type, workflow_id, latest_execution_id, updated_at" + where
        + " ORDER BY updated_at DESC, event_id LIMIT %s",
        [*params, limit],
    )  # fmt: skip
    return int(count), [
        DeadLetter(event_id=r[0], message_type=r[1], workflow_id=r[2], latest_execution_id=r[3], dead_lettered_at=r[4])
        for r in rows
    ]


def tenant_summary(
    views: TenantViews,
    start: datetime,
    end: datetime,
    *,
    categorise: Categorise,
    max_failures: int = MAX_FAILURES,
    top_groups: int = TOP_GROUPS,
    examples: int = EXAMPLES,
    latest_failures: bool = False,
) -> TenantSummary:
    """The tenant's figures over [start, end) (aware datetimes; UTC days). Past `max_failures` the groups
    cover the first failures of the range, or with `latest_failures` the latest (what a page looked at now
    wants: its work stays bounded however many failed)."""
    start, end = _utc(start), _utc(end)
    totals = Counts()
    by_type: dict[str | None, Counts] = defaultdict(Counts)
    by_workflow: dict[str | None, Counts] = defaultdict(Counts)
    by_day: dict[date, Counts] = {d: Counts() for d in _days(start, end)}
    for workflow_id, message_type, day, *figures in _counts(views, start, end):
        numbers = [int(n) for n in figures]
        totals.add(*numbers)
        by_type[message_type or None].add(*numbers)
        by_workflow[workflow_id or None].add(*numbers)
        by_day.setdefault(day.astimezone(UTC).date(), Counts()).add(*numbers)
    [(received,)] = views.fetch(
        TABLES, "SELECT count(*) FROM {messages} WHERE received_at >= %s AND received_at < %s", [start, end]
    )
    runs = failed_runs(views, start, end, max_failures + 1, latest=latest_failures)
    truncated = len(runs) > max_failures
    groups = _groups(runs[-max_failures:] if latest_failures else runs[:max_failures], categorise)
    faulted_count, faulted = _faulted(views, start, end, examples)
    dead_count, dead = _dead_letters(views, start, end, examples)
    return TenantSummary(
        tenant_id=views.tenant_id,
        start=start,
        end=end,
        messages_received=int(received),
        totals=totals,
        days=[Day(day=d, counts=by_day[d]) for d in sorted(by_day)],
        by_message_type=_sorted(by_type),
        by_workflow=_sorted(by_workflow),
        groups=groups[:top_groups],
        group_count=len(groups),
        failures_read=min(len(runs), max_failures),
        failures_truncated=truncated,
        faulted_count=faulted_count,
        faulted=faulted,
        dead_letter_count=dead_count,
        dead_letters=dead,
    )
