"""Two executions side by side, step by step: what an operator looks at when a run failed and another one
(the replay that fixed it, or the last good run of the workflow) did not. Answered from the traces the
executions view keeps, read through `query.traces` (so each side carries its inputs and outputs whole and
a skipped step the output it reused), after the views are brought up to date like every trace read.

Which executions are compared, when the caller does not say (docs/traces.md, "Comparing runs"):
- left: the message's latest failed execution (`latest-failed`);
- right: the message's latest succeeded execution (`latest-succeeded`: after the failed one whenever one
  succeeded after it, as a replay that fixed it did), else the latest succeeded execution of the same
  workflow, whatever its message (`workflow-latest-succeeded`).
An execution named by the caller (`given`) must be recorded for the tenant (else `UnknownExecution`); the
left one must have processed this message, the right one this message or one of the same workflow (else
`NotComparable`). With no execution to put on a side, or the same one on both, `NothingToCompare`.

Steps pair by name, in order: the n-th step of a name on the left with the n-th of that name on the right,
so a replay that skipped a step, or reported its steps in another order, still lines up.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventstore.query import traces
from eventstore.query.traces import ExecutionRow, StepTrace, Trace
from eventstore.store import EventStore, TenantViews
from eventstore.views import messages
from eventstore.views import traces as trace_view

LEFT, RIGHT = "left", "right"
GIVEN = "given"
LATEST_FAILED = "latest-failed"
LATEST_SUCCEEDED = "latest-succeeded"
WORKFLOW_LATEST_SUCCEEDED = "workflow-latest-succeeded"
CHOICES = (GIVEN, LATEST_FAILED, LATEST_SUCCEEDED, WORKFLOW_LATEST_SUCCEEDED)
"""Which rule put an execution on its side."""
COMPARED = ("status", "attempts", "input", "output", "error")
"""What `StepPair.differences` may name, in this order. A step on one side only differs in all of them."""

_MILLISECOND = timedelta(milliseconds=1)
# A literal statement (no SQL assembled here); its columns are ExecutionRow's, in order.
_LATEST_SUCCEEDED_OF_WORKFLOW = (
    "SELECT execution_id, message_event_id, operation_id, workflow_id, workflow_instance_id, started_at,"
    " completed_at, status, replay_of, error, dead_lettered, last_event_at, replay_id"
    " FROM {executions} WHERE workflow_id = %s AND status = 'succeeded' AND execution_id <> %s"
    " ORDER BY started_at DESC, execution_id DESC LIMIT 1"
)


class CompareRefused(Exception):
    """Why a side cannot be compared: `side` is `left` or `right`, as the caller names it."""

    def __init__(self, side: str, detail: str, execution_id: str | None = None) -> None:
        super().__init__(detail)
        self.side, self.detail, self.execution_id = side, detail, execution_id


class UnknownExecution(CompareRefused):
    """The execution named for a side is not recorded for the tenant."""


class NotComparable(CompareRefused):
    """The execution named for a side is recorded, but not one this message's comparison may show."""


class NothingToCompare(CompareRefused):
    """No execution to put on a side (or the same one on both)."""


@dataclass(frozen=True)
class Side:
    trace: Trace
    chosen: str
    """One of `CHOICES`."""

    @property
    def duration_ms(self) -> int | None:
        return duration_ms(self.trace.execution.started_at, self.trace.execution.completed_at)


@dataclass(frozen=True)
class StepPair:
    name: str | None
    occurrence: int
    """The n-th step of this name, on each side (from 1)."""
    left: StepTrace | None
    right: StepTrace | None
    differences: tuple[str, ...]


@dataclass(frozen=True)
class Comparison:
    message_event_id: UUID
    left: Side
    right: Side
    steps: list[StepPair]


def duration_ms(started: datetime | None, completed: datetime | None) -> int | None:
    """Whole milliseconds from `started` to `completed`; None without both, or when the end was recorded
    before the start (events reported out of order: their recorded times do not measure the run)."""
    if started is None or completed is None or completed < started:
        return None
    return (completed - started) // _MILLISECOND


def compare_runs(
    store: EventStore,
    tenant_id: str,
    event_id: UUID,
    *,
    left: str | None = None,
    right: str | None = None,
    min_position: int | None = None,
) -> Comparison | None:
    """The comparison of two executions of message `event_id` (see the module's note for which); None for
    a message not recorded. Raises a `CompareRefused` when a side cannot be compared."""
    runs = traces.executions_of_message(store, tenant_id, event_id, min_position=min_position)
    if runs is None:
        return None
    views = store.views(tenant_id)

    def given(side: str, execution_id: str) -> Trace:
        found = traces.read_trace(store, tenant_id, execution_id, min_position=min_position)
        if found is None:
            raise UnknownExecution(side, f"no execution {execution_id!r} is recorded for this tenant", execution_id)
        return found

    left_side = Side(given(LEFT, left), GIVEN) if left is not None else None
    right_trace = given(RIGHT, right) if right is not None else None
    if left_side is not None and left_side.trace.execution.message_event_id != event_id:
        raise NotComparable(LEFT, f"execution {left!r} did not process message {event_id}", left)

    if left_side is None:
        failed = _latest(runs, trace_view.FAILED, excluding=right)
        if failed is None:
            raise NothingToCompare(LEFT, f"message {event_id} has no failed execution to compare; name one as left")
        left_side = Side(given(LEFT, failed.execution_id), LATEST_FAILED)

    message = messages.get_message(views, event_id)
    workflow = left_side.trace.execution.workflow_id or (message.workflow_id if message else None)
    left_id = left_side.trace.execution.execution_id

    if right_trace is not None:
        row = right_trace.execution
        if row.message_event_id != event_id and (workflow is None or row.workflow_id != workflow):
            raise NotComparable(
                RIGHT,
                f"execution {right!r} processed neither message {event_id} nor another of its workflow ({workflow!r})",
                right,
            )
        right_side = Side(right_trace, GIVEN)
    else:
        chosen = _default_right(store, tenant_id, views, runs, left_id, workflow, min_position)
        if chosen is None:
            raise NothingToCompare(
                RIGHT,
                f"neither message {event_id} nor its workflow ({workflow!r}) has a succeeded execution to compare "
                f"with {left_id!r}; name one as right",
            )
        right_side = chosen
    if right_side.trace.execution.execution_id == left_id:
        raise NothingToCompare(RIGHT, f"left and right are the same execution ({left_id!r})", left_id)
    return Comparison(event_id, left_side, right_side, pair_steps(left_side.trace.steps, right_side.trace.steps))


def _latest(runs: Sequence[ExecutionRow], status: str, *, excluding: str | None) -> ExecutionRow | None:
    """The last of `runs` (in the order they started) in `status`, other than `excluding`."""
    return next((r for r in reversed(runs) if r.status == status and r.execution_id != excluding), None)


def _default_right(
    store: EventStore,
    tenant_id: str,
    views: TenantViews,
    runs: Sequence[ExecutionRow],
    left_id: str,
    workflow: str | None,
    min_position: int | None,
) -> Side | None:
    succeeded = _latest(runs, trace_view.SUCCEEDED, excluding=left_id)
    chosen = LATEST_SUCCEEDED
    if succeeded is None and workflow is not None:
        rows = views.fetch(trace_view.TABLES, _LATEST_SUCCEEDED_OF_WORKFLOW, [workflow, left_id])
        succeeded = ExecutionRow(*rows[0]) if rows else None
        chosen = WORKFLOW_LATEST_SUCCEEDED
    if succeeded is None:
        return None
    found = traces.read_trace(store, tenant_id, succeeded.execution_id, min_position=min_position)
    return Side(found, chosen) if found is not None else None


# --- pairing steps ----------------------------------------------------------------------------------------


def _keyed(steps: Sequence[StepTrace]) -> list[tuple[tuple[str | None, int], StepTrace]]:
    seen: Counter[str | None] = Counter()
    keyed = []
    for step in steps:
        seen[step.row.name] += 1
        keyed.append(((step.row.name, seen[step.row.name]), step))
    return keyed


def pair_steps(left: Sequence[StepTrace], right: Sequence[StepTrace]) -> list[StepPair]:
    """The steps of both sides paired by (name, occurrence), in the left side's order; a step only the right
    side has comes after the step that precedes it there (first, when none does)."""
    on_left, on_right = _keyed(left), _keyed(right)
    left_of, right_of = dict(on_left), dict(on_right)
    order = [key for key, _ in on_left]
    after = -1
    for key, _ in on_right:
        if key in left_of:
            after = order.index(key)
        else:
            after += 1
            order.insert(after, key)
    return [
        StepPair(key[0], key[1], left_of.get(key), right_of.get(key), differences(left_of.get(key), right_of.get(key)))
        for key in order
    ]


def differences(left: StepTrace | None, right: StepTrace | None) -> tuple[str, ...]:
    """Which of `COMPARED` differ between two steps (JSON equality for input, output and error)."""
    if left is None or right is None:
        return COMPARED
    found = []
    if left.row.status != right.row.status:
        found.append("status")
    if left.row.attempts != right.row.attempts:
        found.append("attempts")
    if not same_json(left.input, right.input):
        found.append("input")
    if not same_json(left.output, right.output):
        found.append("output")
    if not same_json(left.row.error, right.row.error):
        found.append("error")
    return tuple(found)


_UNREADABLE = object()


def _value(text: str | None) -> Any:
    # No value is answered as JSON null, so it compares as null.
    try:
        return json.loads(text) if text is not None else None
    except (ValueError, RecursionError):
        return _UNREADABLE


def same_json(left: str | None, right: str | None) -> bool:
    """Whether two JSON texts (None: null) hold equal JSON values: objects whatever the order of their
    members, numbers by value (1 and 1.0 are equal), true and 1 not. Text that cannot be read is equal
    only to the same text."""
    if left == right:
        return True
    pending = [(_value(left), _value(right))]
    # Iterative: a value may be nested as deep as a payload could be.
    while pending:
        a, b = pending.pop()
        if a is _UNREADABLE or b is _UNREADABLE:
            return False
        if isinstance(a, dict) and isinstance(b, dict):
            if a.keys() != b.keys():
                return False
            pending.extend((a[k], b[k]) for k in a)
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                return False
            pending.extend(zip(a, b, strict=True))
        elif isinstance(a, bool) or isinstance(b, bool):
            if a is not b:
                return False
        elif isinstance(a, int | float) and isinstance(b, int | float):
            if a != b:
                return False
        elif type(a) is not type(b) or a != b:
            return False
    return True


__all__ = [
    "CHOICES",
    "COMPARED",
    "CompareRefused",
    "Comparison",
    "NotComparable",
    "NothingToCompare",
    "Side",
    "StepPair",
    "UnknownExecution",
    "compare_runs",
    "differences",
    "duration_ms",
    "pair_steps",
    "same_json",
]
