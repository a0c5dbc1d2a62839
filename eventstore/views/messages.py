"""The messages view: one row per received message (TriggerReceived / InstanceCreationRequestReceived in
the audit stream) with how far its processing got; and the reads the API serves from it.

A message's status is a function of what is recorded about it, recomputed whenever any of it changes,
so it is the same whatever order the events arrive in (docs/traces.md):

- `received`: nothing settles it yet;
- from its executions (ExecutionStarted naming it by `messageEventId`, or by an `operationId` that is
  its event id): the latest execution by (start time, start event id) decides: `processing` while it
  has no end, then `succeeded`, `failed`, or `dead-lettered` (an ExecutionFailed with
  `"deadLettered": true`: the engine gave up on the message);
- without executions, engine outcomes settle it: a trigger's TransitionCompleted / TransitionFailed
  (linked by the trigger's `id`, or by a correlation id equal to the message's operationId), and for a
  creation request its instance's InstanceCreated / InstanceCreationFailed. The latest by
  (recorded_at, event id) decides: `succeeded` or `failed`.

`attempts` counts the message's executions. A message recorded after its executions (they are in
other streams) finds them waiting: its row is computed from what is there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from eventstore.event_types import EventType
from eventstore.models import RecordedEvent
from eventstore.store import AUDIT_STREAM_ID, INSTANCE_PREFIX, TenantViews, ViewWriter
from eventstore.views.traces import (
    EXECUTION_EVENTS,
    FAILED,
    SUCCEEDED,
    RunSummary,
    Unplaceable,
    as_message_id,
    label,
    payload_object,
    run_summaries,
    trace_facts,
)
from eventstore.views.view import View

TABLES = {
    "messages": "view_messages",
    "executions": "view_message_executions",
    "outcomes": "view_message_outcomes",
}

RECEIVED, PROCESSING, DEAD_LETTERED = "received", "processing", "dead-lettered"
MESSAGE_STATUSES = (RECEIVED, PROCESSING, SUCCEEDED, FAILED, DEAD_LETTERED)
MESSAGE_EVENTS = frozenset({EventType.TRIGGER_RECEIVED.value, EventType.INSTANCE_CREATION_REQUEST_RECEIVED.value})
_CREATION_REQUEST = EventType.INSTANCE_CREATION_REQUEST_RECEIVED.value
_MESSAGE_REPLAYED = EventType.MESSAGE_REPLAYED.value
_OUTCOMES = {
    EventType.TRANSITION_COMPLETED.value: (SUCCEEDED, False),
    EventType.TRANSITION_FAILED.value: (FAILED, False),
    EventType.INSTANCE_CREATED.value: (SUCCEEDED, True),
    EventType.INSTANCE_CREATION_FAILED.value: (FAILED, True),
}


# --- what a message and an engine outcome say -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageFact:
    """A received message, as far as the views need it."""

    event_id: UUID
    event_type: str
    message_type: str
    """The trigger's `triggerName` (`deal.won`), or the event type when there is none (creation requests)."""
    source_system: str | None
    workflow_id: str | None
    """The message's own: the event's, or the envelope's `properties.WorkflowId`."""
    workflow_instance_id: str | None
    operation_id: str | None
    trigger_id: str | None
    payload_sha256: bytes
    received_at: datetime


def read_message(event: RecordedEvent) -> MessageFact | None:
    """The message `event` records, or None when it records none. An envelope that cannot be read (kept
    in Blob storage, say) still makes a message, from the event's own columns."""
    if event.event_type not in MESSAGE_EVENTS or event.stream_id != AUDIT_STREAM_ID:
        return None
    try:
        envelope = payload_object(event)
    except Unplaceable:
        envelope = {}
    trigger = envelope.get("trigger")
    trigger = trigger if isinstance(trigger, dict) else {}
    properties = envelope.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    return MessageFact(
        event_id=event.event_id,
        event_type=event.event_type,
        message_type=label(trigger.get("triggerName")) or event.event_type,
        source_system=event.source_system,
        workflow_id=event.workflow_id or label(properties.get("WorkflowId")),
        workflow_instance_id=event.workflow_instance_id,
        operation_id=event.correlation_id,
        trigger_id=label(trigger.get("id")),
        payload_sha256=bytes(event.payload_sha256),
        received_at=event.recorded_at,
    )


def messages_in(events: Iterable[RecordedEvent]) -> list[MessageFact]:
    return [m for m in map(read_message, events) if m is not None]


class OutcomeFact(NamedTuple):
    """An engine outcome that may settle a message (a row of `view_message_outcomes`)."""

    event_id: UUID
    outcome: str
    trigger_id: str | None
    correlation_id: UUID | None
    instance_id: str
    creation: bool
    workflow_id: str | None
    recorded_at: datetime


def read_outcome(event: RecordedEvent) -> OutcomeFact | None:
    """The engine outcome `event` records, when it can settle a message; else None."""
    kind = _OUTCOMES.get(event.event_type)
    if kind is None or not event.stream_id.startswith(INSTANCE_PREFIX):
        return None
    outcome, creation = kind
    try:
        body = payload_object(event)
    except Unplaceable:
        body = {}
    data = body.get("data") if "specversion" in body else body
    data = data if isinstance(data, dict) else {}
    trigger = data.get("trigger")
    trigger_id = label(trigger.get("id")) if isinstance(trigger, dict) else None
    correlation = as_message_id(event.correlation_id)
    if not (creation or trigger_id or correlation):
        return None
    return OutcomeFact(
        event.event_id,
        outcome,
        trigger_id,
        correlation,
        event.stream_id.removeprefix(INSTANCE_PREFIX),
        creation,
        event.workflow_id or label(data.get("workflowId")),
        event.recorded_at,
    )


# --- a message's status ---------------------------------------------------------------------------------


class _Settled(NamedTuple):
    status: str
    latest_execution_id: str | None
    attempts: int
    workflow_id: str | None
    updated_at: datetime


def settle(
    received_at: datetime, own_workflow: str | None, runs: Sequence[RunSummary], outcomes: Sequence[OutcomeFact]
) -> _Settled:
    """A message's status from its executions (those with a start) and its engine outcomes."""
    started = [r for r in runs if r.started_at is not None and r.start_event_id is not None]
    moments = [received_at, *(o.recorded_at for o in outcomes)]
    moments += [m for r in started for m in (r.started_at, r.ended_at) if m is not None]
    updated_at = max(moments)
    if started:
        latest = max(started, key=lambda r: (r.started_at, r.start_event_id))
        if latest.outcome is None:
            status = PROCESSING
        elif latest.outcome == FAILED and latest.dead_lettered:
            status = DEAD_LETTERED
        else:
            status = latest.outcome
        workflow = own_workflow or latest.workflow_id
        return _Settled(status, latest.execution_id, len(started), workflow, updated_at)
    if outcomes:
        last = max(outcomes, key=lambda o: (o.recorded_at, o.event_id))
        return _Settled(last.outcome, None, 0, own_workflow or last.workflow_id, updated_at)
    return _Settled(RECEIVED, None, 0, own_workflow, updated_at)


_COLUMNS = (
    "event_id, event_type, message_type, source_system, workflow_id, workflow_instance_id, operation_id, trigger_id,"
    " payload_sha256, received_at, status, latest_execution_id, attempts, updated_at, replay_count, last_replay_id,"
    " last_replay_at"
)
_OUTCOME_COLUMNS = "event_id, outcome, trigger_id, correlation_id, instance_id, creation, workflow_id, recorded_at"


def _resettle(writer: ViewWriter, message_ids: set[UUID]) -> None:
    """Recompute the status of the recorded messages among `message_ids` from everything about them."""
    if not message_ids:
        return
    rows = writer.execute(
        "SELECT event_id, event_type, own_workflow_id, workflow_instance_id, trigger_id, received_at"
        " FROM {messages} WHERE event_id = ANY(%s)",
        [sorted(message_ids)],
    )
    if not rows:
        return
    ids = [r[0] for r in rows]
    runs: dict[UUID, list[RunSummary]] = {i: [] for i in ids}
    statement = "SELECT " + RunSummary.COLUMNS + " FROM {executions} WHERE message_event_id = ANY(%s)"
    for row in writer.execute(statement, [ids]):
        run = RunSummary.of_row(row)
        assert run.message_event_id is not None
        runs[run.message_event_id].append(run)
    triggers = sorted({r[4] for r in rows if r[4] is not None})
    creations = sorted({r[3] for r in rows if r[1] == _CREATION_REQUEST and r[3] is not None})
    outcomes = [
        OutcomeFact(*r)
        for r in writer.execute(
            "SELECT " + _OUTCOME_COLUMNS + " FROM {outcomes} WHERE trigger_id = ANY(%s) OR correlation_id = ANY(%s)"
            " OR (creation AND instance_id = ANY(%s))",
            [triggers, ids, creations],
        )
    ]
    updates = []
    for event_id, event_type, own_workflow, instance_id, trigger_id, received_at in rows:
        mine = [
            o
            for o in outcomes
            if (trigger_id is not None and o.trigger_id == trigger_id)
            or o.correlation_id == event_id
            or (
                o.creation
                and event_type == _CREATION_REQUEST
                and instance_id is not None
                and o.instance_id == instance_id
            )
        ]
        settled = settle(received_at, own_workflow, runs[event_id], mine)
        updates.append((*settled, event_id))
    writer.executemany(
        "UPDATE {messages} SET status = %s, latest_execution_id = %s, attempts = %s, workflow_id = %s,"
        " updated_at = %s WHERE event_id = %s",
        updates,
    )


def _count_replays(writer: ViewWriter, events: Sequence[RecordedEvent]) -> None:
    """Each MessageReplayed (recorded by the store, after its message: always readable, never repeated)
    counts once for its message, and the latest names the last replay."""
    replays = []
    for event in events:
        if event.event_type != _MESSAGE_REPLAYED or event.payload is None:
            continue
        body = json.loads(event.payload)
        replays.append((event.recorded_at, UUID(body["replayId"]), UUID(body["originalEventId"])))
    writer.executemany(
        "UPDATE {messages} SET replay_count = replay_count + 1,"
        " last_replay_id = CASE WHEN last_replay_at IS NULL OR last_replay_at <= %s THEN %s ELSE last_replay_id END,"
        " last_replay_at = greatest(last_replay_at, %s) WHERE event_id = %s",
        [(at, replay_id, at, original) for at, replay_id, original in replays],
    )


def _apply(writer: ViewWriter, events: Sequence[RecordedEvent]) -> None:
    unsettled: set[UUID] = set()
    _count_replays(writer, events)
    messages = messages_in(events)
    if messages:
        writer.executemany(
            "INSERT INTO {messages} (event_id, event_type, message_type, source_system, own_workflow_id, workflow_id,"
            " workflow_instance_id, operation_id, trigger_id, payload_sha256, received_at, status, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
            [
                (
                    m.event_id,
                    m.event_type,
                    m.message_type,
                    m.source_system,
                    m.workflow_id,
                    m.workflow_id,
                    m.workflow_instance_id,
                    m.operation_id,
                    m.trigger_id,
                    m.payload_sha256,
                    m.received_at,
                    RECEIVED,
                    m.received_at,
                )
                for m in messages
            ],
        )
        unsettled.update(m.event_id for m in messages)
    # Only executions' own events matter here; the executions view lists those it cannot read.
    facts, _ = trace_facts(e for e in events if e.event_type in EXECUTION_EVENTS)
    runs, named = run_summaries(writer, "executions", facts)
    if runs:
        writer.executemany(
            "INSERT INTO {executions} (" + RunSummary.COLUMNS + ") VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (execution_id) DO UPDATE SET message_event_id = EXCLUDED.message_event_id,"
            " workflow_id = EXCLUDED.workflow_id, start_event_id = EXCLUDED.start_event_id,"
            " started_at = EXCLUDED.started_at, end_event_id = EXCLUDED.end_event_id, ended_at = EXCLUDED.ended_at,"
            " outcome = EXCLUDED.outcome, dead_lettered = EXCLUDED.dead_lettered",
            [r.row() for r in runs],
        )
        unsettled |= named
    outcomes = [o for o in map(read_outcome, events) if o is not None]
    if outcomes:
        writer.executemany(
            "INSERT INTO {outcomes} (" + _OUTCOME_COLUMNS + ") VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (event_id) DO NOTHING",
            outcomes,
        )
        linked = writer.execute(
            "SELECT event_id FROM {messages} WHERE trigger_id = ANY(%s) OR event_id = ANY(%s)"
            " OR (event_type = %s AND workflow_instance_id = ANY(%s))",
            [
                sorted({o.trigger_id for o in outcomes if o.trigger_id is not None}),
                sorted({o.correlation_id for o in outcomes if o.correlation_id is not None}),
                _CREATION_REQUEST,
                sorted({o.instance_id for o in outcomes if o.creation}),
            ],
        )
        unsettled.update(r[0] for r in linked)
    _resettle(writer, unsettled)


MESSAGES = View(
    name="messages",
    tables=TABLES,
    apply=_apply,
    description="One row per received message: source, type, payload hash, received at, processing status "
    "(received, processing, succeeded, failed, dead-lettered), latest execution, attempts.",
)


# --- reads ----------------------------------------------------------------------------------------------


class MessageRow(NamedTuple):
    event_id: UUID
    event_type: str
    message_type: str
    source_system: str | None
    workflow_id: str | None
    workflow_instance_id: str | None
    operation_id: str | None
    trigger_id: str | None
    payload_sha256: bytes
    received_at: datetime
    status: str
    latest_execution_id: str | None
    attempts: int
    updated_at: datetime
    replay_count: int
    last_replay_id: UUID | None
    last_replay_at: datetime | None


def get_message(views: TenantViews, event_id: UUID) -> MessageRow | None:
    rows = views.fetch(TABLES, "SELECT " + _COLUMNS + " FROM {messages} WHERE event_id = %s", [event_id])
    return MessageRow(*rows[0]) if rows else None


@dataclass(frozen=True)
class MessageFilter:
    """Which messages: every member given must hold (a bulk replay's selection, a list's filters)."""

    status: str | None = None
    event_type: str | None = None
    message_type: str | None = None
    workflow_id: str | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None
    event_ids: tuple[UUID, ...] | None = None


def _where(
    match: MessageFilter, after: tuple[datetime, UUID] | None = None, *, newest_first: bool = False
) -> tuple[str, list[Any]]:
    filters: list[str] = ["TRUE"]
    params: list[Any] = []
    # Each filter is a fixed fragment; only values travel as parameters.
    if after is not None:
        filters.append("(received_at, event_id) < (%s, %s)" if newest_first else "(received_at, event_id) > (%s, %s)")
        params += [after[0], after[1]]
    if match.status is not None:
        filters.append("status = %s")
        params.append(match.status)
    if match.event_type is not None:
        filters.append("event_type = %s")
        params.append(match.event_type)
    if match.message_type is not None:
        filters.append("message_type = %s")
        params.append(match.message_type)
    if match.workflow_id is not None:
        filters.append("workflow_id = %s")
        params.append(match.workflow_id)
    if match.received_from is not None:
        filters.append("received_at >= %s")
        params.append(match.received_from)
    if match.received_to is not None:
        filters.append("received_at < %s")
        params.append(match.received_to)
    if match.event_ids is not None:
        filters.append("event_id = ANY(%s)")
        params.append(list(match.event_ids))
    return " AND ".join(filters), params


def matching(match: MessageFilter) -> tuple[str, list[Any]]:
    """A statement over `{messages}` (TABLES) yielding the `event_id`s `match` selects, in the order they were
    received, and its parameters: what a replay job is made of."""
    where, params = _where(match)
    return "SELECT event_id FROM {messages} WHERE " + where + " ORDER BY received_at, event_id", params


def list_messages(
    views: TenantViews,
    *,
    status: str | None = None,
    event_type: str | None = None,
    message_type: str | None = None,
    workflow_id: str | None = None,
    received_from: datetime | None = None,
    received_to: datetime | None = None,
    after: tuple[datetime, UUID] | None = None,
    limit: int = 100,
    newest_first: bool = False,
) -> list[MessageRow]:
    """Messages in (received_at, event_id) order after `after` (with `newest_first`, the other way round and
    before it), matching every filter given."""
    match = MessageFilter(status, event_type, message_type, workflow_id, received_from, received_to)
    where, params = _where(match, after, newest_first=newest_first)
    order = "received_at DESC, event_id DESC" if newest_first else "received_at, event_id"
    statement = "SELECT " + _COLUMNS + " FROM {messages} WHERE " + where + " ORDER BY " + order + " LIMIT %s"
    return [MessageRow(*r) for r in views.fetch(TABLES, statement, [*params, limit])]


def count_messages(views: TenantViews, match: MessageFilter, *, cap: int = 100_000) -> int:
    """How many messages `match` selects, counted up to `cap` (a count past it answers `cap`: a page says
    "more than", and the count stays cheap however many there are)."""
    where, params = _where(match)
    statement = "SELECT count(*) FROM (SELECT 1 FROM {messages} WHERE " + where + " LIMIT %s) AS m"
    rows = views.fetch(TABLES, statement, [*params, cap])
    return int(rows[0][0]) if rows else 0
