"""The executions view (the trace): each execution an engine reported, its steps with their inputs,
outputs, errors and attempts, and the trace events it could not place; and the reads the API serves
from it. The event shapes and the rules are in docs/traces.md.

Trace events arrive out of order and twice (queues), so the tables must be a function of the *set* of
trace events, whatever order and batches they came in. The view therefore keeps each trace event it
could read (`view_trace_events`) and each step's owner (`view_trace_step_owners`: the execution of its
first event, a minimum, so a join), and for every execution an event touches (and a step's former
owner) recomputes that execution, its steps and its unplaced events from all of their events
(`_recompute`). Each choice the recomputation makes is by a total order on the events themselves,
never by arrival:

- an execution's start is its first ExecutionStarted by (recorded_at, event_id); its end is its first
  ExecutionCompleted, else its first ExecutionFailed (a completion outranks a failure);
- a step belongs to the execution named by its first event by (recorded_at, event_id); its attempts
  are the highest attempt seen; it succeeded if any attempt completed (so a late failure of an earlier
  attempt changes nothing), else it was skipped if a replay reported it skipped (StepSkipped: a step
  with its idempotency key had already succeeded), else it failed if its highest attempt failed, else
  it is started;
- an event that does not fit is listed in `view_trace_unplaced` with the reason, and moves into the
  trace if the event it was missing (its execution's start, say) arrives later.

A payload that cannot be read (not JSON, a missing or invalid member) is listed as unplaced at once:
bad input never stops the view. A bug that raises still does (the runner stops it there).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple
from uuid import UUID

from eventstore.event_types import EventType
from eventstore.models import RecordedEvent, is_json_content_type
from eventstore.store import INSTANCE_PREFIX, TenantViews, ViewWriter
from eventstore.views.view import View

TABLES = {
    "facts": "view_trace_events",
    "owners": "view_trace_step_owners",
    "executions": "view_trace_executions",
    "steps": "view_trace_steps",
    "unplaced": "view_trace_unplaced",
}

INLINE_DATA_LIMIT = 64 * 1024
"""A step's input or output larger than this (as UTF-8 JSON text) is not copied into the view: the view
names the event that carried it and reads return it from there (Blob storage included)."""
ERROR_TEXT_LIMIT = 32 * 1024
"""An error's message and body are kept up to this many characters each (the event keeps them whole)."""
MAX_ID_LENGTH = 256
MAX_TEXT_LENGTH = 512
_MAX_ATTEMPT = 2**31 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

EXECUTION_STARTED = EventType.EXECUTION_STARTED.value
EXECUTION_COMPLETED = EventType.EXECUTION_COMPLETED.value
EXECUTION_FAILED = EventType.EXECUTION_FAILED.value
STEP_STARTED = EventType.STEP_STARTED.value
STEP_COMPLETED = EventType.STEP_COMPLETED.value
STEP_FAILED = EventType.STEP_FAILED.value
STEP_SKIPPED = EventType.STEP_SKIPPED.value
EXECUTION_EVENTS = frozenset({EXECUTION_STARTED, EXECUTION_COMPLETED, EXECUTION_FAILED})
STEP_EVENTS = frozenset({STEP_STARTED, STEP_COMPLETED, STEP_FAILED, STEP_SKIPPED})
TRACE_EVENTS = EXECUTION_EVENTS | STEP_EVENTS

STARTED, SUCCEEDED, FAILED, SKIPPED = "started", "succeeded", "failed", "skipped"
RUN_STATUSES = (STARTED, SUCCEEDED, FAILED)
STEP_STATUSES = (STARTED, SUCCEEDED, FAILED, SKIPPED)
"""A step may also be `skipped`: terminal like `succeeded`, its work done by the step it names."""

# Why an event is unplaced (`view_trace_unplaced.reason`).
NOT_IN_AN_INSTANCE = "not-in-an-instance-stream"
PAYLOAD_NOT_INLINE = "payload-not-inline"
NOT_JSON = "not-json"
NOT_AN_OBJECT = "not-an-object"
INVALID_MEMBER = "invalid-member"
UNKNOWN_EXECUTION = "unknown-execution"
STEP_IN_TWO_EXECUTIONS = "step-in-two-executions"
OTHER_INSTANCE = "other-instance"


class Unplaceable(Exception):
    """A trace event whose payload cannot be read: `reason` is one of the codes above."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


# --- reading one trace event ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TraceFact:
    """What one trace event says, read from its payload (a row of `view_trace_events`)."""

    event_id: UUID
    kind: str
    execution_id: str
    instance_id: str
    recorded_at: datetime
    workflow_id: str | None = None
    step_id: str | None = None
    message_event_id: UUID | None = None
    operation_id: str | None = None
    replay_of: str | None = None
    name: str | None = None
    attempt: int | None = None
    idempotency_key: str | None = None
    data: str | None = None
    data_by_ref: bool = False
    error: str | None = None
    dead_lettered: bool = False
    replay_id: UUID | None = None
    skipped_for_execution_id: str | None = None
    skipped_for_step_id: str | None = None

    @property
    def order(self) -> tuple[datetime, UUID]:
        """The total order every choice between events is made by."""
        return self.recorded_at, self.event_id


_FACT_COLUMNS = (
    "event_id, kind, execution_id, instance_id, recorded_at, workflow_id, step_id, message_event_id,"
    " operation_id, replay_of, name, attempt, idempotency_key, data, data_by_ref, error, dead_lettered,"
    " replay_id, skipped_for_execution_id, skipped_for_step_id"
)


def _row_of(fact: TraceFact) -> tuple[Any, ...]:
    return (
        fact.event_id,
        fact.kind,
        fact.execution_id,
        fact.instance_id,
        fact.recorded_at,
        fact.workflow_id,
        fact.step_id,
        fact.message_event_id,
        fact.operation_id,
        fact.replay_of,
        fact.name,
        fact.attempt,
        fact.idempotency_key,
        fact.data,
        fact.data_by_ref,
        fact.error,
        fact.dead_lettered,
        fact.replay_id,
        fact.skipped_for_execution_id,
        fact.skipped_for_step_id,
    )


def _fact_of(row: Sequence[Any]) -> TraceFact:
    return TraceFact(*row)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def payload_object(event: RecordedEvent) -> dict[str, Any]:
    """The event's payload as a JSON object, or `Unplaceable` saying why it is not one."""
    if event.payload is None:
        raise Unplaceable(
            PAYLOAD_NOT_INLINE,
            f"the payload is kept in Blob storage ({event.blob_ref}): views read payloads kept in the row only",
        )
    if not is_json_content_type(event.content_type):
        raise Unplaceable(NOT_JSON, f"the content type {event.content_type!r} is not JSON")
    try:
        body = json.loads(event.payload, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise Unplaceable(NOT_JSON, "the payload is not JSON that can be read") from None
    if not isinstance(body, dict):
        raise Unplaceable(NOT_AN_OBJECT, f"the payload is a JSON {type(body).__name__}, not an object")
    return body


def storable(text: str) -> bool:
    """Whether PostgreSQL text can hold `text` (no NUL, no lone surrogate)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def label(value: object, limit: int = MAX_TEXT_LENGTH) -> str | None:
    """`value` when it is text of 1..`limit` characters without control characters, else None."""
    if (
        isinstance(value, str)
        and 0 < len(value) <= limit
        and _CONTROL.search(value) is None
        and (value.isascii() or storable(value))
    ):
        return value
    return None


def _id(body: Mapping[str, Any], member: str, *, required: bool, limit: int = MAX_ID_LENGTH) -> str | None:
    """A member that names something: text of 1..`limit` characters without control characters."""
    value = body.get(member)
    if value is None:
        if required:
            raise Unplaceable(INVALID_MEMBER, f"{member} is missing")
        return None
    text = label(value, limit)
    if text is None:
        raise Unplaceable(
            INVALID_MEMBER, f"{member} must be text of 1 to {limit} characters without control characters"
        )
    return text


def _attempt(body: Mapping[str, Any]) -> int:
    value = body.get("attempt", 1)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_ATTEMPT:
        raise Unplaceable(INVALID_MEMBER, f"attempt must be a whole number from 1 to {_MAX_ATTEMPT}")
    return value


def _uuid(body: Mapping[str, Any], member: str, what: str = "the event id of a received message") -> UUID | None:
    value = body.get(member)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise Unplaceable(INVALID_MEMBER, f"{member} must be a UUID ({what})")


def _skipped_for(body: Mapping[str, Any]) -> tuple[str, str]:
    """A StepSkipped's `skippedFor`: the execution and step whose output the skip reused."""
    value = body.get("skippedFor")
    if not isinstance(value, dict):
        raise Unplaceable(
            INVALID_MEMBER, "skippedFor must be an object naming the completed step: {executionId, stepId}"
        )
    named = {f"skippedFor.{k}": v for k, v in value.items() if k in ("executionId", "stepId")}
    execution = _id(named, "skippedFor.executionId", required=True)
    step = _id(named, "skippedFor.stepId", required=True)
    assert execution is not None and step is not None
    return execution, step


def as_message_id(text: str | None) -> UUID | None:
    """An operationId as the event id of its message (messages are stored under their operationId)."""
    if text is None:
        return None
    try:
        return UUID(text)
    except ValueError:
        return None


def json_text(value: Any) -> str:
    """`value` as compact JSON text PostgreSQL can hold (lone surrogates escaped)."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, separators=(",", ":"))
    return text


def _data(body: Mapping[str, Any], member: str) -> tuple[str | None, bool]:
    """A step's input or output: (its JSON text, False) within the inline limit, (None, True) over it."""
    if member not in body:
        return None, False
    try:
        text = json_text(body[member])
    except (RecursionError, ValueError):
        return None, True
    if len(text) > INLINE_DATA_LIMIT // 4 and len(text.encode("utf-8")) > INLINE_DATA_LIMIT:
        return None, True
    return text, False


def _clip(text: str) -> str:
    if len(text) <= ERROR_TEXT_LIMIT:
        return text
    return text[:ERROR_TEXT_LIMIT] + " [cut here; the event holds it whole]"


def _error(body: Mapping[str, Any]) -> str | None:
    """The `error` member as JSON text `{"message", "statusCode", "body"}`; lenient, since a failure is
    worth recording even when its error is oddly shaped."""
    value = body.get("error")
    if value is None:
        return None
    try:
        if isinstance(value, str):
            value = {"message": value}
        if not isinstance(value, dict):
            value = {"message": json_text(value)}
        message, status, answer = value.get("message"), value.get("statusCode"), value.get("body")
        valid_status = isinstance(status, int) and not isinstance(status, bool) and 0 <= status < 1000
        error = {
            "message": _clip(message if isinstance(message, str) else "" if message is None else json_text(message)),
            "statusCode": status if valid_status else None,
            "body": None if answer is None else _clip(answer if isinstance(answer, str) else json_text(answer)),
        }
    except (RecursionError, ValueError):
        error = {
            "message": "the error reported could not be read (the event holds it)",
            "statusCode": None,
            "body": None,
        }
    return json_text(error)


def read_trace_event(event: RecordedEvent) -> TraceFact:
    """The fact a trace event states, or `Unplaceable`."""
    if not event.stream_id.startswith(INSTANCE_PREFIX):
        raise Unplaceable(NOT_IN_AN_INSTANCE, f"trace events belong in an instance stream, not {event.stream_id!r}")
    body = payload_object(event)
    execution_id = _id(body, "executionId", required=True)
    assert execution_id is not None
    common: dict[str, Any] = {
        "event_id": event.event_id,
        "kind": event.event_type,
        "execution_id": execution_id,
        "instance_id": event.stream_id.removeprefix(INSTANCE_PREFIX),
        "recorded_at": event.recorded_at,
        "workflow_id": event.workflow_id,
    }
    kind = event.event_type
    if kind == EXECUTION_STARTED:
        operation_id = _id(body, "operationId", required=False, limit=MAX_TEXT_LENGTH)
        message = _uuid(body, "messageEventId") or as_message_id(operation_id)
        return TraceFact(
            **common,
            message_event_id=message,
            operation_id=operation_id,
            replay_of=_id(body, "replayOf", required=False),
            replay_id=_uuid(body, "replayId", "the id of the replay that produced the execution"),
        )
    if kind == EXECUTION_COMPLETED:
        return TraceFact(**common)
    if kind == EXECUTION_FAILED:
        dead = body.get("deadLettered", False)
        if not isinstance(dead, bool):
            raise Unplaceable(INVALID_MEMBER, "deadLettered must be true or false")
        return TraceFact(**common, error=_error(body), dead_lettered=dead)
    step: dict[str, Any] = {
        "step_id": _id(body, "stepId", required=True),
        "name": _id(body, "name", required=True, limit=MAX_TEXT_LENGTH),
        "attempt": _attempt(body),
        # A skip stands for the step that succeeded with this key: without the key it says nothing.
        "idempotency_key": _id(body, "idempotencyKey", required=kind == STEP_SKIPPED, limit=MAX_TEXT_LENGTH),
    }
    if kind == STEP_SKIPPED:
        execution, step_id = _skipped_for(body)
        return TraceFact(**common, **step, skipped_for_execution_id=execution, skipped_for_step_id=step_id)
    if kind == STEP_STARTED:
        data, by_ref = _data(body, "input")
        return TraceFact(**common, **step, data=data, data_by_ref=by_ref)
    if kind == STEP_COMPLETED:
        data, by_ref = _data(body, "output")
        return TraceFact(**common, **step, data=data, data_by_ref=by_ref)
    return TraceFact(**common, **step, error=_error(body))


def trace_facts(events: Iterable[RecordedEvent]) -> tuple[list[TraceFact], list[tuple[RecordedEvent, Unplaceable]]]:
    """The trace events among `events`, read: those that could be, and those that could not (and why)."""
    facts, refused = [], []
    for event in events:
        if event.event_type not in TRACE_EVENTS:
            continue
        try:
            facts.append(read_trace_event(event))
        except Unplaceable as exc:
            refused.append((event, exc))
    return facts, refused


# --- an execution's and a step's rows, from their facts --------------------------------------------------


def first(facts: Iterable[TraceFact]) -> TraceFact | None:
    return min(facts, key=lambda f: f.order, default=None)


def execution_end(ends: Iterable[TraceFact]) -> TraceFact | None:
    """The end that counts: the first completion, else the first failure."""
    return min(ends, key=lambda f: (f.kind != EXECUTION_COMPLETED, f.order), default=None)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _attempt_entry(attempt: int, facts: list[TraceFact]) -> tuple[str, dict[str, Any], TraceFact | None]:
    starts = [f for f in facts if f.kind == STEP_STARTED]
    done = first(f for f in facts if f.kind == STEP_COMPLETED)
    skipped = first(f for f in facts if f.kind == STEP_SKIPPED)
    failed = first(f for f in facts if f.kind == STEP_FAILED)
    # A completion outranks a skip, which outranks a failure: one rank, whatever the order of arrival.
    settled = done or skipped or failed
    status = SUCCEEDED if done else SKIPPED if skipped else FAILED if failed else STARTED
    start = first(starts)
    entry = {
        "attempt": attempt,
        "status": status,
        "startedAt": _utc(start.recorded_at) if start else None,
        "completedAt": _utc(settled.recorded_at) if settled else None,
        "error": json.loads(failed.error) if failed and failed.error and status == FAILED else None,
    }
    return status, entry, settled


def _step_row(step_id: str, execution_id: str, facts: list[TraceFact]) -> tuple[Any, ...]:
    by_attempt: dict[int, list[TraceFact]] = defaultdict(list)
    for f in facts:
        by_attempt[f.attempt or 1].append(f)
    attempts = max(by_attempt)
    history = [_attempt_entry(a, by_attempt[a]) for a in sorted(by_attempt)]
    # The output is that of the lowest attempt that completed (there should be one).
    completion = min(
        (f for f in facts if f.kind == STEP_COMPLETED), key=lambda f: (f.attempt or 1, f.order), default=None
    )
    # A skip stands for a completion elsewhere: the first one by (recorded_at, event_id) names that step.
    skip = first(f for f in facts if f.kind == STEP_SKIPPED)
    last_status, _, last_settled = history[-1]
    settled: TraceFact | None
    if completion is not None:
        status, settled = SUCCEEDED, completion
    elif skip is not None:
        status, settled = SKIPPED, skip
    elif last_status == FAILED:
        status, settled = FAILED, last_settled
    else:
        status, settled = STARTED, None
    starts = [f for f in facts if f.kind == STEP_STARTED]
    # The input of the highest attempt that reported one (the same for every attempt, normally).
    input_fact = min(starts, key=lambda f: (-(f.attempt or 1), f.order), default=None)
    keyed = first(f for f in facts if f.idempotency_key is not None)
    named = first(facts)
    assert named is not None
    first_start = first(starts)
    return (
        step_id,
        execution_id,
        named.name,
        status,
        attempts,
        keyed.idempotency_key if keyed else None,
        input_fact.data if input_fact else None,
        input_fact.event_id if input_fact and input_fact.data_by_ref else None,
        completion.data if completion else None,
        completion.event_id if completion and completion.data_by_ref else None,
        settled.error if settled is not None and status == FAILED else None,
        first_start.recorded_at if first_start else None,
        settled.recorded_at if settled else None,
        named.recorded_at,
        json.dumps([entry for _, entry, _ in history], separators=(",", ":")),
        skip.skipped_for_execution_id if skip is not None and status == SKIPPED else None,
        skip.skipped_for_step_id if skip is not None and status == SKIPPED else None,
    )


_STEP_COLUMNS = (
    "step_id, execution_id, name, status, attempts, idempotency_key, input, input_event_id, output,"
    " output_event_id, error, started_at, completed_at, first_at, attempt_history, skipped_for_execution_id,"
    " skipped_for_step_id"
)
_EXECUTION_COLUMNS = (
    "execution_id, message_event_id, operation_id, workflow_id, workflow_instance_id, started_at, completed_at,"
    " status, replay_of, error, dead_lettered, last_event_at, replay_id"
)


_UNPLACED_COLUMNS = "event_id, event_type, execution_id, step_id, reason, detail, recorded_at"


@dataclass
class _Recomputed:
    executions: list[tuple[Any, ...]] = field(default_factory=list)
    steps: list[tuple[Any, ...]] = field(default_factory=list)
    unplaced: list[tuple[Any, ...]] = field(default_factory=list)


def _unplaced(fact: TraceFact, reason: str, detail: str) -> tuple[Any, ...]:
    return (fact.event_id, fact.kind, fact.execution_id, fact.step_id, reason, detail, fact.recorded_at)


def _recompute(touched: set[str], facts: Sequence[TraceFact], owner: Mapping[str, str]) -> _Recomputed:
    """The rows of the executions in `touched`, of the steps they own, and their unplaced events, from
    `facts` (every fact of those executions) and `owner` (the execution each of their steps belongs to)."""
    out = _Recomputed()
    by_execution: dict[str, list[TraceFact]] = defaultdict(list)
    for f in facts:
        by_execution[f.execution_id].append(f)
    starts = {e: first(f for f in fs if f.kind == EXECUTION_STARTED) for e, fs in by_execution.items()}

    def placed(f: TraceFact) -> bool:
        execution = f.execution_id
        if f.step_id is not None and owner[f.step_id] != execution:
            # Not naming the owner: which execution that is may change, this event's fate does not.
            detail = f"step {f.step_id!r} is reported for more than one execution; it stays with the first"
            out.unplaced.append(_unplaced(f, STEP_IN_TWO_EXECUTIONS, detail))
            return False
        start = starts.get(execution)
        if start is None:
            detail = f"no ExecutionStarted of execution {execution!r} is recorded (yet)"
            out.unplaced.append(_unplaced(f, UNKNOWN_EXECUTION, detail))
            return False
        if f.instance_id != start.instance_id:
            detail = f"execution {execution!r} belongs to instance {start.instance_id!r}, not {f.instance_id!r}"
            out.unplaced.append(_unplaced(f, OTHER_INSTANCE, detail))
            return False
        return True

    for execution in sorted(touched):
        mine = [f for f in by_execution.get(execution, []) if placed(f)]
        start = starts.get(execution)
        if start is None:
            continue
        end = execution_end(f for f in mine if f.kind in (EXECUTION_COMPLETED, EXECUTION_FAILED))
        workflow = start.workflow_id or min((f.workflow_id for f in mine if f.workflow_id), default=None)
        status = STARTED if end is None else SUCCEEDED if end.kind == EXECUTION_COMPLETED else FAILED
        out.executions.append(
            (
                execution,
                start.message_event_id,
                start.operation_id,
                workflow,
                start.instance_id,
                start.recorded_at,
                end.recorded_at if end else None,
                status,
                start.replay_of,
                end.error if end is not None and status == FAILED else None,
                bool(end and end.dead_lettered and status == FAILED),
                max(f.recorded_at for f in mine),
                start.replay_id,
            )
        )
        steps: dict[str, list[TraceFact]] = defaultdict(list)
        for f in mine:
            if f.step_id is not None:
                steps[f.step_id].append(f)
        out.steps.extend(_step_row(step, execution, steps[step]) for step in sorted(steps))
    return out


def _apply(writer: ViewWriter, events: Sequence[RecordedEvent]) -> None:
    facts, refused = trace_facts(events)
    writer.executemany(
        "INSERT INTO {unplaced} (" + _UNPLACED_COLUMNS + ") VALUES (%s, %s, NULL, NULL, %s, %s, %s)"
        " ON CONFLICT (event_id) DO NOTHING",
        [(e.event_id, e.event_type, exc.reason, exc.detail, e.recorded_at) for e, exc in refused],
    )
    if not facts:
        return
    writer.executemany(
        "INSERT INTO {facts} (" + _FACT_COLUMNS + ") VALUES (" + ", ".join(["%s"] * 20) + ")"
        " ON CONFLICT (event_id) DO NOTHING",
        [_row_of(f) for f in facts],
    )
    # A step belongs to the execution of its first event by (recorded_at, event_id): kept per step, so
    # that a step id many executions report costs no more than any other.
    firsts: dict[str, TraceFact] = {}
    for f in facts:
        if f.step_id is not None and (f.step_id not in firsts or f.order < firsts[f.step_id].order):
            firsts[f.step_id] = f
    # Every execution whose rows may change: those the new events name, and a step's former owner.
    touched = {f.execution_id for f in facts}
    if firsts:
        known = {
            r[0]: (r[1], r[2], r[3])
            for r in writer.execute(
                "SELECT step_id, execution_id, first_at, first_event_id FROM {owners} WHERE step_id = ANY(%s)",
                [sorted(firsts)],
            )
        }
        moved = []
        for step, f in sorted(firsts.items()):
            held = known.get(step)
            if held is None or f.order < (held[1], held[2]):
                moved.append((step, f.execution_id, f.recorded_at, f.event_id))
                if held is not None:
                    touched.add(held[0])
        writer.executemany(
            "INSERT INTO {owners} (step_id, execution_id, first_at, first_event_id) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (step_id) DO UPDATE SET execution_id = EXCLUDED.execution_id,"
            " first_at = EXCLUDED.first_at, first_event_id = EXCLUDED.first_event_id",
            moved,
        )
    rewrite_executions(writer, touched)


def rewrite_executions(writer: ViewWriter, touched: set[str]) -> None:
    """Recompute the executions, steps and unplaced events of the executions `touched` from their facts."""
    ids = sorted(touched)
    mine = [
        _fact_of(r)
        for r in writer.execute("SELECT " + _FACT_COLUMNS + " FROM {facts} WHERE execution_id = ANY(%s)", [ids])
    ]
    steps = sorted({f.step_id for f in mine if f.step_id is not None})
    owner = (
        dict(writer.execute("SELECT step_id, execution_id FROM {owners} WHERE step_id = ANY(%s)", [steps]))
        if steps
        else {}
    )
    rows = _recompute(touched, mine, owner)
    writer.execute("DELETE FROM {executions} WHERE execution_id = ANY(%s)", [ids])
    writer.execute("DELETE FROM {steps} WHERE execution_id = ANY(%s)", [ids])
    writer.execute("DELETE FROM {unplaced} WHERE execution_id = ANY(%s)", [ids])
    writer.executemany(
        "INSERT INTO {executions} (" + _EXECUTION_COLUMNS + ") VALUES (" + ", ".join(["%s"] * 13) + ")",
        rows.executions,
    )
    writer.executemany(
        "INSERT INTO {steps} (" + _STEP_COLUMNS + ") VALUES (" + ", ".join(["%s"] * 17) + ")", rows.steps
    )
    writer.executemany(
        "INSERT INTO {unplaced} (" + _UNPLACED_COLUMNS + ") VALUES (%s, %s, %s, %s, %s, %s, %s)", rows.unplaced
    )


def _age_out(writer: ViewWriter, *, cutoff: datetime) -> int:
    """Retention: the trace events recorded before `cutoff` give up their copies of step inputs and outputs,
    which are read from their events from then on (as those over the inline limit always were: from cold
    storage once the events are archived), and their executions are recomputed from them."""
    rows = writer.execute(
        "UPDATE {facts} SET data = NULL, data_by_ref = true WHERE recorded_at < %s AND data IS NOT NULL"
        " RETURNING execution_id",
        [cutoff],
    )
    touched = {r[0] for r in rows}
    if touched:
        rewrite_executions(writer, touched)
    return len(rows)


EXECUTIONS = View(
    name="executions",
    tables=TABLES,
    apply=_apply,
    age_out=_age_out,
    description="The trace: each execution an engine reported, its steps (input, output, error, attempts), "
    "and the trace events that could not be placed.",
)


# --- reads ----------------------------------------------------------------------------------------------


class ExecutionRow(NamedTuple):
    execution_id: str
    message_event_id: UUID | None
    operation_id: str | None
    workflow_id: str | None
    workflow_instance_id: str
    started_at: datetime
    completed_at: datetime | None
    status: str
    replay_of: str | None
    error: str | None
    dead_lettered: bool
    last_event_at: datetime
    replay_id: UUID | None


class StepRow(NamedTuple):
    step_id: str
    execution_id: str
    name: str | None
    status: str
    attempts: int
    idempotency_key: str | None
    input: str | None
    input_event_id: UUID | None
    output: str | None
    output_event_id: UUID | None
    error: str | None
    started_at: datetime | None
    completed_at: datetime | None
    first_at: datetime
    attempt_history: str
    skipped_for_execution_id: str | None
    skipped_for_step_id: str | None


class UnplacedRow(NamedTuple):
    event_id: UUID
    event_type: str
    execution_id: str | None
    step_id: str | None
    reason: str
    detail: str
    recorded_at: datetime


def get_execution(views: TenantViews, execution_id: str) -> ExecutionRow | None:
    rows = views.fetch(
        TABLES, "SELECT " + _EXECUTION_COLUMNS + " FROM {executions} WHERE execution_id = %s", [execution_id]
    )
    return ExecutionRow(*rows[0]) if rows else None


def steps_of(views: TenantViews, execution_id: str) -> list[StepRow]:
    """The steps of an execution, in the order they were first reported."""
    statement = "SELECT " + _STEP_COLUMNS + " FROM {steps} WHERE execution_id = %s ORDER BY first_at, step_id"
    return [StepRow(*r) for r in views.fetch(TABLES, statement, [execution_id])]


def steps_with_key(views: TenantViews, idempotency_key: str, limit: int = 100) -> list[StepRow]:
    """Steps recorded with `idempotency_key`, those that succeeded first, then in the order first reported."""
    statement = (
        "SELECT " + _STEP_COLUMNS + " FROM {steps} WHERE idempotency_key = %s"
        " ORDER BY status <> 'succeeded', first_at, step_id LIMIT %s"
    )
    return [StepRow(*r) for r in views.fetch(TABLES, statement, [idempotency_key, limit])]


def steps_by_id(views: TenantViews, step_ids: Sequence[str]) -> dict[str, StepRow]:
    """The steps with these ids (those recorded), by id: the steps skipped steps name."""
    if not step_ids:
        return {}
    statement = "SELECT " + _STEP_COLUMNS + " FROM {steps} WHERE step_id = ANY(%s)"
    return {row.step_id: row for row in (StepRow(*r) for r in views.fetch(TABLES, statement, [sorted(step_ids)]))}


def executions_of_message(views: TenantViews, message_event_id: UUID, limit: int = 1000) -> list[ExecutionRow]:
    statement = (
        "SELECT " + _EXECUTION_COLUMNS + " FROM {executions} WHERE message_event_id = %s"
        " ORDER BY started_at, execution_id LIMIT %s"
    )
    return [ExecutionRow(*r) for r in views.fetch(TABLES, statement, [message_event_id, limit])]


def list_executions(
    views: TenantViews,
    *,
    status: str | None = None,
    workflow_id: str | None = None,
    replay_id: UUID | None = None,
    started_from: datetime | None = None,
    started_to: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 100,
) -> list[ExecutionRow]:
    """Executions in (started_at, execution_id) order after `after`, matching every filter given."""
    filters, params = ["TRUE"], []
    # Each filter is a fixed fragment; only values travel as parameters.
    if after is not None:
        filters.append("(started_at, execution_id) > (%s, %s)")
        params += [after[0], after[1]]
    if status is not None:
        filters.append("status = %s")
        params.append(status)
    if workflow_id is not None:
        filters.append("workflow_id = %s")
        params.append(workflow_id)
    if replay_id is not None:
        filters.append("replay_id = %s")
        params.append(replay_id)
    if started_from is not None:
        filters.append("started_at >= %s")
        params.append(started_from)
    if started_to is not None:
        filters.append("started_at < %s")
        params.append(started_to)
    statement = (
        "SELECT " + _EXECUTION_COLUMNS + " FROM {executions} WHERE " + " AND ".join(filters)
        + " ORDER BY started_at, execution_id LIMIT %s"
    )  # fmt: skip
    return [ExecutionRow(*r) for r in views.fetch(TABLES, statement, [*params, limit])]


def unplaced_count(views: TenantViews) -> int:
    rows = views.fetch(TABLES, "SELECT count(*) FROM {unplaced}")
    return int(rows[0][0])


def list_unplaced(views: TenantViews, limit: int = 100) -> list[UnplacedRow]:
    """The most recently recorded unplaced trace events first."""
    statement = (
        "SELECT event_id, event_type, execution_id, step_id, reason, detail, recorded_at FROM {unplaced}"
        " ORDER BY recorded_at DESC, event_id DESC LIMIT %s"
    )
    return [UnplacedRow(*r) for r in views.fetch(TABLES, statement, [limit])]


# --- an execution in brief, for the views that count or settle by it -----------------------------------


@dataclass
class RunSummary:
    """An execution as the messages and failure-count views keep it: its first start, the end that counts
    (`execution_end`), and the least workflow id any of its events names. `add` is a join: the summary of
    a set of facts is the same whatever order they are added in, and adding one twice changes nothing."""

    execution_id: str
    message_event_id: UUID | None = None
    workflow_id: str | None = None
    start_event_id: UUID | None = None
    started_at: datetime | None = None
    end_event_id: UUID | None = None
    ended_at: datetime | None = None
    outcome: str | None = None
    dead_lettered: bool = False

    COLUMNS = (
        "execution_id, message_event_id, workflow_id, start_event_id, started_at, end_event_id, ended_at, outcome,"
        " dead_lettered"
    )

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> RunSummary:
        return cls(*row[:9])

    def row(self) -> tuple[Any, ...]:
        return (
            self.execution_id,
            self.message_event_id,
            self.workflow_id,
            self.start_event_id,
            self.started_at,
            self.end_event_id,
            self.ended_at,
            self.outcome,
            self.dead_lettered,
        )

    def add(self, fact: TraceFact) -> None:
        if fact.workflow_id is not None and (self.workflow_id is None or fact.workflow_id < self.workflow_id):
            self.workflow_id = fact.workflow_id
        if fact.kind == EXECUTION_STARTED:
            if (
                self.started_at is None
                or self.start_event_id is None
                or fact.order < (self.started_at, self.start_event_id)
            ):
                self.start_event_id, self.started_at = fact.event_id, fact.recorded_at
                self.message_event_id = fact.message_event_id
        elif fact.kind in (EXECUTION_COMPLETED, EXECUTION_FAILED):
            rank = (fact.kind != EXECUTION_COMPLETED, *fact.order)
            if (
                self.ended_at is None
                or self.end_event_id is None
                or rank
                < (
                    self.outcome != SUCCEEDED,
                    self.ended_at,
                    self.end_event_id,
                )
            ):
                self.end_event_id, self.ended_at = fact.event_id, fact.recorded_at
                self.outcome = SUCCEEDED if fact.kind == EXECUTION_COMPLETED else FAILED
                self.dead_lettered = fact.dead_lettered and fact.kind == EXECUTION_FAILED


def run_summaries(writer: ViewWriter, table: str, facts: Sequence[TraceFact]) -> tuple[list[RunSummary], set[UUID]]:
    """The summaries kept in `{table}` with the execution-level `facts` merged in (the caller writes them
    back), and the messages they named before or after (whose status or counts may have moved)."""
    mine = [f for f in facts if f.step_id is None]
    if not mine:
        return [], set()
    ids = sorted({f.execution_id for f in mine})
    statement = "SELECT " + RunSummary.COLUMNS + " FROM {" + table + "} WHERE execution_id = ANY(%s)"
    summaries = {r[0]: RunSummary.of_row(r) for r in writer.execute(statement, [ids])}
    messages = {s.message_event_id for s in summaries.values() if s.message_event_id is not None}
    for fact in mine:
        summaries.setdefault(fact.execution_id, RunSummary(fact.execution_id)).add(fact)
    changed = [summaries[i] for i in ids]
    messages.update(s.message_event_id for s in changed if s.message_event_id is not None)
    return changed, messages
