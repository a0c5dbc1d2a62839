"""Reads of the trace views: messages and their processing status, executions with their steps, steps by
idempotency key, failure counts, and the trace events that could not be placed. Each read first brings
its view up to date (read-your-writes, as `instances` does), then answers from it.

A step's input or output over the views' inline limit is read from the event that carried it (from
Blob storage when its payload lives there), so a trace answers with every input and output whole. A step
a replay skipped answers the output of the step it names (`skippedFor`): the output it reused.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventstore.errors import PayloadIntegrityError
from eventstore.query.history import DEFAULT_PAGE_SIZE, check_limit
from eventstore.query.instances import up_to_date
from eventstore.store import EventStore, TenantEvents, TenantViews
from eventstore.views import EXECUTIONS, FAILURE_COUNTS, MESSAGES, messages, traces
from eventstore.views import failure_counts as counts
from eventstore.views.failure_counts import FailureBucket
from eventstore.views.messages import MessageRow
from eventstore.views.traces import ExecutionRow, StepRow, UnplacedRow

log = logging.getLogger(__name__)

MESSAGE_STATUSES = messages.MESSAGE_STATUSES
RUN_STATUSES = traces.RUN_STATUSES
STEP_STATUSES = traces.STEP_STATUSES
GRANULARITIES = (counts.HOUR, counts.DAY)
STEPS_PER_KEY = 100
"""The most steps `steps_by_key` answers (those that succeeded first)."""
MAX_SKIP_HOPS = 8
"""How far a skipped step's `skippedFor` is followed through steps that were skipped themselves (an engine
should name the step that succeeded; one that named a skip is followed this far, never around a loop)."""


@dataclass(frozen=True)
class StepTrace:
    """A step with its input and output as JSON text (null when it had none, or when its event can no
    longer be read). A skipped step's output is that of the step that succeeded, which it reused;
    `output_event_id` names the event that carried an output over the inline limit."""

    row: StepRow
    input: str | None
    output: str | None
    output_event_id: UUID | None = None


@dataclass(frozen=True)
class Trace:
    execution: ExecutionRow
    steps: list[StepTrace]


def _member_text(tenant: TenantEvents, event_id: UUID | None, member: str, inline: str | None) -> str | None:
    """`inline`, or the `member` of the payload of event `event_id` as JSON text."""
    if event_id is None:
        return inline
    event = tenant.get_event(event_id)
    if event is None:
        return None
    try:
        body = json.loads(tenant.payload_of(event))
        return traces.json_text(body.get(member)) if isinstance(body, dict) else None
    except (PayloadIntegrityError, ValueError, RecursionError) as exc:
        # The trace still answers; the event's own read says what happened to its payload.
        log.warning("the %s of a step, in event %s, could not be read: %s", member, event_id, exc)
        return None


def _reused(views: TenantViews, rows: list[StepRow]) -> dict[str, StepRow]:
    """For each skipped step among `rows`, the step that succeeded whose output it reused: the step its
    `skippedFor` names (in the execution it names), followed while that one was skipped too. A skipped step
    whose step cannot be found (not recorded, not in that execution, not succeeded) has none."""
    known = {row.step_id: row for row in rows}
    pending = {row.step_id: row for row in rows if row.status == traces.SKIPPED}
    found: dict[str, StepRow] = {}
    for _ in range(MAX_SKIP_HOPS):
        wanted = {p.skipped_for_step_id for p in pending.values() if p.skipped_for_step_id} - known.keys()
        known.update(traces.steps_by_id(views, sorted(wanted)))
        following = {}
        for step_id, at in pending.items():
            target = known.get(at.skipped_for_step_id or "")
            if target is None or target.execution_id != at.skipped_for_execution_id:
                continue
            if target.status == traces.SUCCEEDED:
                found[step_id] = target
            elif target.status == traces.SKIPPED:
                following[step_id] = target
        pending = following
        if not pending:
            break
    return found


def _with_data(tenant: TenantEvents, views: TenantViews, rows: list[StepRow]) -> list[StepTrace]:
    reused = _reused(views, rows)
    out = []
    for row in rows:
        source = reused.get(row.step_id, row)
        out.append(
            StepTrace(
                row,
                _member_text(tenant, row.input_event_id, "input", row.input),
                _member_text(tenant, source.output_event_id, "output", source.output),
                source.output_event_id,
            )
        )
    return out


def read_trace(
    store: EventStore, tenant_id: str, execution_id: str, *, min_position: int | None = None
) -> Trace | None:
    """An execution and its steps, or None when no ExecutionStarted of it is recorded."""
    tenant_id = up_to_date(store, tenant_id, EXECUTIONS, min_position=min_position)
    views = store.views(tenant_id)
    execution = traces.get_execution(views, execution_id)
    if execution is None:
        return None
    return Trace(execution, _with_data(store.tenant(tenant_id), views, traces.steps_of(views, execution_id)))


def steps_by_key(
    store: EventStore, tenant_id: str, idempotency_key: str, *, min_position: int | None = None
) -> list[StepTrace]:
    """The steps recorded with `idempotency_key` in any execution, those that succeeded first (a step a
    replay skipped comes after them: it reused one of them, it is not the step that did the work)."""
    tenant_id = up_to_date(store, tenant_id, EXECUTIONS, min_position=min_position)
    views = store.views(tenant_id)
    rows = traces.steps_with_key(views, idempotency_key, STEPS_PER_KEY)
    return _with_data(store.tenant(tenant_id), views, rows)


def list_executions(
    store: EventStore,
    tenant_id: str,
    *,
    status: str | None = None,
    workflow_id: str | None = None,
    replay_id: UUID | None = None,
    started_from: datetime | None = None,
    started_to: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    min_position: int | None = None,
) -> tuple[list[ExecutionRow], tuple[datetime, str] | None]:
    """Executions in (started_at, execution_id) order after `after`, and where the next page starts (None
    when this one reached the end)."""
    check_limit(limit)
    tenant_id = up_to_date(store, tenant_id, EXECUTIONS, min_position=min_position)
    rows = traces.list_executions(
        store.views(tenant_id),
        status=status,
        workflow_id=workflow_id,
        replay_id=replay_id,
        started_from=started_from,
        started_to=started_to,
        after=after,
        limit=limit,
    )
    return rows, (rows[-1].started_at, rows[-1].execution_id) if len(rows) == limit else None


def read_message(
    store: EventStore, tenant_id: str, event_id: UUID, *, min_position: int | None = None
) -> MessageRow | None:
    tenant_id = up_to_date(store, tenant_id, MESSAGES, min_position=min_position)
    return messages.get_message(store.views(tenant_id), event_id)


def executions_of_message(
    store: EventStore, tenant_id: str, event_id: UUID, *, min_position: int | None = None
) -> list[ExecutionRow] | None:
    """The executions of a recorded message in the order they started; None for a message not recorded."""
    tenant_id = up_to_date(store, tenant_id, MESSAGES, EXECUTIONS, min_position=min_position)
    views = store.views(tenant_id)
    if messages.get_message(views, event_id) is None:
        return None
    return traces.executions_of_message(views, event_id)


def list_messages(
    store: EventStore,
    tenant_id: str,
    *,
    status: str | None = None,
    event_type: str | None = None,
    workflow_id: str | None = None,
    received_from: datetime | None = None,
    received_to: datetime | None = None,
    after: tuple[datetime, UUID] | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    min_position: int | None = None,
) -> tuple[list[MessageRow], tuple[datetime, UUID] | None]:
    """Messages in (received_at, event_id) order after `after`, and where the next page starts (None when
    this one reached the end)."""
    check_limit(limit)
    tenant_id = up_to_date(store, tenant_id, MESSAGES, min_position=min_position)
    rows = messages.list_messages(
        store.views(tenant_id),
        status=status,
        event_type=event_type,
        workflow_id=workflow_id,
        received_from=received_from,
        received_to=received_to,
        after=after,
        limit=limit,
    )
    return rows, (rows[-1].received_at, rows[-1].event_id) if len(rows) == limit else None


def failure_counts(
    store: EventStore,
    tenant_id: str,
    *,
    granularity: str = counts.HOUR,
    counted_from: datetime | None = None,
    counted_to: datetime | None = None,
    workflow_id: str | None = None,
    min_position: int | None = None,
) -> tuple[list[FailureBucket], bool]:
    """The failure counts per bucket (see `views.failure_counts.failure_counts`), and whether they were cut
    at `MAX_BUCKETS`."""
    tenant_id = up_to_date(store, tenant_id, FAILURE_COUNTS, min_position=min_position)
    return counts.failure_counts(
        store.views(tenant_id),
        granularity=granularity,
        counted_from=counted_from,
        counted_to=counted_to,
        workflow_id=workflow_id,
    )


def unplaced_trace_events(
    store: EventStore, tenant_id: str, limit: int = 100, *, min_position: int | None = None
) -> tuple[int, list[UnplacedRow]]:
    """How many trace events the executions view could not place, and the most recent of them."""
    tenant_id = up_to_date(store, tenant_id, EXECUTIONS, min_position=min_position)
    views = store.views(tenant_id)
    return traces.unplaced_count(views), traces.list_unplaced(views, limit)


__all__ = [
    "GRANULARITIES",
    "MESSAGE_STATUSES",
    "RUN_STATUSES",
    "STEP_STATUSES",
    "ExecutionRow",
    "FailureBucket",
    "MessageRow",
    "StepTrace",
    "Trace",
    "UnplacedRow",
    "executions_of_message",
    "failure_counts",
    "list_executions",
    "list_messages",
    "read_message",
    "read_trace",
    "steps_by_key",
    "unplaced_trace_events",
]
