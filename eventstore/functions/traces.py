"""The trace API: received messages and their processing status, executions with their steps (the whole
trace in one answer), steps by idempotency key (what a replay may skip), failure counts, and the trace
events the views could not place. Served from the views, each brought up to date first. Lists page with
signed continuation tokens bound to their filters. docs/traces.md has the event shapes and the rules."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import azure.functions as func

from eventstore.errors import InvalidInput
from eventstore.http import continuation
from eventstore.http.examples import EXAMPLE_INSTANCE
from eventstore.http.exchange import event_id_param, json_response, page, parse_query, route_param
from eventstore.http.models import (
    ExecutionItem,
    ExecutionsPage,
    ExecutionsQuery,
    FailureBucket,
    FailureCounts,
    FailureCountsQuery,
    MessageExecutions,
    MessageItem,
    MessagesPage,
    MessagesQuery,
    SkippedFor,
    StepAttempt,
    StepItem,
    StepsFound,
    StepsQuery,
    Trace,
    TraceError,
    UnplacedQuery,
    UnplacedTraceEvent,
    UnplacedTraceEvents,
    ViewReadQuery,
)
from eventstore.http.problems import HttpProblem
from eventstore.http.routes import Operation, Reply, http_function
from eventstore.query import traces
from eventstore.services import services
from eventstore.views.traces import label

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]

MAX_EXECUTION_ID_LENGTH = 256
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MAX_MICROS = (datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH) // _MICROSECOND


def _token_key() -> bytes:
    return continuation.key_of(services().settings)


def _not_ours() -> InvalidInput:
    return InvalidInput("continuation is not a token this API handed out; start over without it", field="continuation")


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _cursor(key: bytes, token: str, kind: str, filters: Mapping[str, Any]) -> tuple[datetime, str]:
    """The (time, id) a token of list `kind` continues after, checked like any query value."""
    position = continuation.decode(key, token, kind, filters)
    if isinstance(position, list) and len(position) == 2:
        micros, ident = position
        good_time = isinstance(micros, int) and not isinstance(micros, bool) and 0 <= micros <= _MAX_MICROS
        if good_time and isinstance(ident, str) and label(ident, MAX_EXECUTION_ID_LENGTH) is not None:
            assert isinstance(micros, int)
            return _EPOCH + micros * _MICROSECOND, ident
    raise _not_ours()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def trace_error(text: str | None) -> TraceError | None:
    """An error as the executions view keeps it (JSON text), as the API answers it."""
    return TraceError.model_validate(json.loads(text)) if text else None


def _execution_id_param(req: func.HttpRequest) -> str:
    text = route_param(req, "executionId")
    if label(text, MAX_EXECUTION_ID_LENGTH) is None:
        raise InvalidInput(
            f"executionId must be 1 to {MAX_EXECUTION_ID_LENGTH} characters without control characters",
            field="executionId",
        )
    return text


def _unknown(what: str, ident: str, **extensions: str) -> HttpProblem:
    return HttpProblem(
        404,
        f"Unknown {what}",
        f"no {what} {ident!r} is recorded for this tenant",
        slug=f"unknown-{what}",
        extensions=extensions,
    )


def _message(row: traces.MessageRow) -> MessageItem:
    return MessageItem(
        event_id=str(row.event_id),
        event_type=row.event_type,
        message_type=row.message_type,
        source_system=row.source_system,
        workflow_id=row.workflow_id,
        workflow_instance_id=row.workflow_instance_id,
        operation_id=row.operation_id,
        payload_sha256=bytes(row.payload_sha256).hex(),
        received_at=row.received_at,
        status=row.status,
        latest_execution_id=row.latest_execution_id,
        attempts=row.attempts,
        updated_at=row.updated_at,
        replay_count=row.replay_count,
        last_replay_id=str(row.last_replay_id) if row.last_replay_id else None,
        last_replay_at=row.last_replay_at,
    )


def execution_item(row: traces.ExecutionRow) -> ExecutionItem:
    """An execution row as the API answers it (the compare route adds to it)."""
    return ExecutionItem(
        execution_id=row.execution_id,
        message_event_id=str(row.message_event_id) if row.message_event_id else None,
        operation_id=row.operation_id,
        workflow_id=row.workflow_id,
        workflow_instance_id=row.workflow_instance_id,
        started_at=row.started_at,
        completed_at=row.completed_at,
        status=row.status,
        replay_of=row.replay_of,
        replay_id=str(row.replay_id) if row.replay_id else None,
        error=trace_error(row.error),
        dead_lettered=row.dead_lettered,
    )


def _step(step: traces.StepTrace) -> bytes:
    """One step; its input and output are spliced in as the JSON text the view keeps (a model would refuse
    JSON nested as deep as a payload may be)."""
    row = step.row
    item = StepItem(
        execution_id=row.execution_id,
        step_id=row.step_id,
        name=row.name,
        status=row.status,
        attempts=row.attempts,
        idempotency_key=row.idempotency_key,
        input=None,
        output=None,
        input_event_id=str(row.input_event_id) if row.input_event_id else None,
        output_event_id=str(step.output_event_id) if step.output_event_id else None,
        error=trace_error(row.error),
        started_at=row.started_at,
        completed_at=row.completed_at,
        attempt_history=[StepAttempt.model_validate(entry) for entry in json.loads(row.attempt_history)],
        skipped_for=(
            SkippedFor(execution_id=row.skipped_for_execution_id, step_id=row.skipped_for_step_id)
            if row.skipped_for_execution_id is not None and row.skipped_for_step_id is not None
            else None
        ),
    )
    head = item.model_dump_json(by_alias=True, exclude={"input", "output"})
    return f'{head[:-1]},"input":{step.input or "null"},"output":{step.output or "null"}}}'.encode()


# --- examples ---------------------------------------------------------------------------------------------

_MESSAGE_ID = "7e7033bf-3e51-4df6-94d0-a51fc0f9afc3"
_EXAMPLE_MESSAGE = {
    "eventId": _MESSAGE_ID,
    "eventType": "TriggerReceived",
    "messageType": "deal.won",
    "sourceSystem": "crm",
    "workflowId": "deal-won-workflow",
    "workflowInstanceId": EXAMPLE_INSTANCE,
    "operationId": _MESSAGE_ID,
    "payloadSha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "receivedAt": "2026-12-01T09:00:00Z",
    "status": "succeeded",
    "latestExecutionId": "exec-1",
    "attempts": 1,
    "updatedAt": "2026-12-01T09:00:04Z",
    "replayCount": 0,
    "lastReplayId": None,
    "lastReplayAt": None,
}
_EXAMPLE_EXECUTION = {
    "executionId": "exec-1",
    "messageEventId": _MESSAGE_ID,
    "operationId": None,
    "workflowId": "deal-won-workflow",
    "workflowInstanceId": EXAMPLE_INSTANCE,
    "startedAt": "2026-12-01T09:00:01Z",
    "completedAt": "2026-12-01T09:00:04Z",
    "status": "succeeded",
    "replayOf": None,
    "replayId": None,
    "error": None,
    "deadLettered": False,
}
_MAIL_ERROR = {"message": "mail answered 503 Service Unavailable", "statusCode": 503, "body": '{"retryAfter": 1}'}
_EXAMPLE_STEPS = [
    {
        "executionId": "exec-1",
        "stepId": "6f0b9a52-3c1e-4b43-9d0e-3f1f4c1e2a01",
        "name": "create-crm-record",
        "status": "succeeded",
        "attempts": 1,
        "idempotencyKey": f"{_MESSAGE_ID}/create-crm-record",
        "input": {"dealId": "42", "customer": "Contoso"},
        "output": {"recordId": "crm-7"},
        "inputEventId": None,
        "outputEventId": None,
        "error": None,
        "startedAt": "2026-12-01T09:00:01Z",
        "completedAt": "2026-12-01T09:00:02Z",
        "attemptHistory": [
            {"attempt": 1, "status": "succeeded", "startedAt": "2026-12-01T09:00:01Z",
             "completedAt": "2026-12-01T09:00:02Z", "error": None},
        ],
        "skippedFor": None,
    },
    {
        "executionId": "exec-1",
        "stepId": "0c5d7e1a-9b2f-4f65-8a11-55e0b2c7d302",
        "name": "send-email",
        "status": "succeeded",
        "attempts": 2,
        "idempotencyKey": f"{_MESSAGE_ID}/send-email",
        "input": {"to": "buyer@contoso.example"},
        "output": {"sent": True},
        "inputEventId": None,
        "outputEventId": None,
        "error": None,
        "startedAt": "2026-12-01T09:00:02Z",
        "completedAt": "2026-12-01T09:00:04Z",
        "attemptHistory": [
            {"attempt": 1, "status": "failed", "startedAt": "2026-12-01T09:00:02Z",
             "completedAt": "2026-12-01T09:00:02Z", "error": _MAIL_ERROR},
            {"attempt": 2, "status": "succeeded", "startedAt": "2026-12-01T09:00:03Z",
             "completedAt": "2026-12-01T09:00:04Z", "error": None},
        ],
        "skippedFor": None,
    },
]  # fmt: skip

_PAGING = "Pages continue with `continuation`, which is valid only with the same filters."

# --- messages -------------------------------------------------------------------------------------------

LIST_MESSAGES = Operation(
    name="list_messages",
    method="GET",
    route="tenants/{tenantId}/messages",
    auth_level="FUNCTION",
    tag="traces",
    summary="Received messages and how far their processing got",
    description="Every message received (TriggerReceived, InstanceCreationRequestReceived) in order of "
    "receipt, optionally by processing status (received, processing, succeeded, failed, dead-lettered), "
    "kind, workflow and time of receipt. " + _PAGING,
    query=MessagesQuery,
    replies=(
        Reply(
            200, "One page of messages.", MessagesPage, example={"messages": [_EXAMPLE_MESSAGE], "continuation": None}
        ),
    ),
    errors=(400, 404, 503),
)


@http_function(blueprint, LIST_MESSAGES)
def list_messages(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, MessagesQuery)
    tenant_id = services().store.tenant(route_param(req, "tenantId")).tenant_id
    filters = {
        "tenant": tenant_id,
        "status": params.status,
        "eventType": params.event_type,
        "workflowId": params.workflow_id,
        "from": _iso(params.received_from),
        "to": _iso(params.received_to),
    }
    key = _token_key()
    after = None
    if params.continuation:
        moment, ident = _cursor(key, params.continuation, "messages", filters)
        try:
            after = (moment, UUID(ident))
        except ValueError:
            raise _not_ours() from None
    rows, cursor = traces.list_messages(
        services().store,
        tenant_id,
        status=params.status,
        event_type=params.event_type,
        workflow_id=params.workflow_id,
        received_from=params.received_from,
        received_to=params.received_to,
        after=after,
        limit=params.limit,
        min_position=params.min_position,
    )
    token = continuation.encode(key, "messages", [_micros(cursor[0]), str(cursor[1])], filters) if cursor else None
    return json_response(MessagesPage(messages=[_message(r) for r in rows], continuation=token))


GET_MESSAGE = Operation(
    name="get_message",
    method="GET",
    route="tenants/{tenantId}/messages/{eventId}",
    auth_level="FUNCTION",
    tag="traces",
    summary="One received message and its processing status",
    description="The message recorded with this event id (its operationId), its processing status, its "
    "latest execution and how many executions processed it. Its exact bytes are at /events/{eventId}.",
    query=ViewReadQuery,
    replies=(Reply(200, "The message.", MessageItem, example=_EXAMPLE_MESSAGE),),
    errors=(400, 404, 503),
)


@http_function(blueprint, GET_MESSAGE)
def get_message(req: func.HttpRequest) -> func.HttpResponse:
    event_id = event_id_param(req)
    params = parse_query(req, ViewReadQuery)
    row = traces.read_message(
        services().store, route_param(req, "tenantId"), event_id, min_position=params.min_position
    )
    if row is None:
        raise _unknown("message", str(event_id), eventId=str(event_id))
    return json_response(_message(row))


GET_MESSAGE_EXECUTIONS = Operation(
    name="get_message_executions",
    method="GET",
    route="tenants/{tenantId}/messages/{eventId}/executions",
    auth_level="FUNCTION",
    tag="traces",
    summary="The executions that processed a message",
    description="Every execution reported for the message (by its event id or operationId), in the order "
    "they started; replays name the execution they replay.",
    query=ViewReadQuery,
    replies=(
        Reply(
            200,
            "The message's executions.",
            MessageExecutions,
            example={"messageEventId": _MESSAGE_ID, "executions": [_EXAMPLE_EXECUTION]},
        ),
    ),
    errors=(400, 404, 503),
)


@http_function(blueprint, GET_MESSAGE_EXECUTIONS)
def get_message_executions(req: func.HttpRequest) -> func.HttpResponse:
    event_id = event_id_param(req)
    params = parse_query(req, ViewReadQuery)
    rows = traces.executions_of_message(
        services().store, route_param(req, "tenantId"), event_id, min_position=params.min_position
    )
    if rows is None:
        raise _unknown("message", str(event_id), eventId=str(event_id))
    return json_response(
        MessageExecutions(message_event_id=str(event_id), executions=[execution_item(r) for r in rows])
    )


# --- executions and steps ----------------------------------------------------------------------------------

GET_EXECUTION = Operation(
    name="get_execution",
    method="GET",
    route="tenants/{tenantId}/executions/{executionId}",
    auth_level="FUNCTION",
    tag="traces",
    summary="One execution's whole trace: its steps, inputs, outputs, errors and attempts",
    description="The execution and every step of it in the order first reported, each with its input and "
    "output (whole: those over 64 KiB are read from the event that carried them), the destination's error "
    "and every attempt. 404 until the execution's ExecutionStarted is recorded.",
    query=ViewReadQuery,
    replies=(Reply(200, "The trace.", Trace, example={**_EXAMPLE_EXECUTION, "steps": _EXAMPLE_STEPS}),),
    errors=(400, 404, 503),
)


@http_function(blueprint, GET_EXECUTION)
def get_execution(req: func.HttpRequest) -> func.HttpResponse:
    execution_id = _execution_id_param(req)
    params = parse_query(req, ViewReadQuery)
    found = traces.read_trace(
        services().store, route_param(req, "tenantId"), execution_id, min_position=params.min_position
    )
    if found is None:
        raise _unknown("execution", execution_id, executionId=execution_id)
    head = execution_item(found.execution).model_dump(mode="json", by_alias=True)
    return json_response(page(head, "steps", (_step(s) for s in found.steps)))


LIST_EXECUTIONS = Operation(
    name="list_executions",
    method="GET",
    route="tenants/{tenantId}/executions",
    auth_level="FUNCTION",
    tag="traces",
    summary="Executions, optionally failed ones, of a workflow, in a time range",
    description="Executions in order of their start, optionally only those in a status (started, "
    "succeeded, failed), of a workflow, produced by a replay (replayId), or started in [from, to). " + _PAGING,
    query=ExecutionsQuery,
    replies=(
        Reply(
            200,
            "One page of executions.",
            ExecutionsPage,
            example={"executions": [_EXAMPLE_EXECUTION], "continuation": None},
        ),
    ),
    errors=(400, 404, 503),
)


@http_function(blueprint, LIST_EXECUTIONS)
def list_executions(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, ExecutionsQuery)
    tenant_id = services().store.tenant(route_param(req, "tenantId")).tenant_id
    filters = {
        "tenant": tenant_id,
        "status": params.status,
        "workflowId": params.workflow_id,
        "from": _iso(params.started_from),
        "to": _iso(params.started_to),
    }
    if params.replay_id is not None:  # only when given: tokens handed out before the filter existed stay good
        filters["replayId"] = str(params.replay_id)
    key = _token_key()
    after = _cursor(key, params.continuation, "executions", filters) if params.continuation else None
    rows, cursor = traces.list_executions(
        services().store,
        tenant_id,
        status=params.status,
        workflow_id=params.workflow_id,
        replay_id=params.replay_id,
        started_from=params.started_from,
        started_to=params.started_to,
        after=after,
        limit=params.limit,
        min_position=params.min_position,
    )
    token = continuation.encode(key, "executions", [_micros(cursor[0]), cursor[1]], filters) if cursor else None
    return json_response(ExecutionsPage(executions=[execution_item(r) for r in rows], continuation=token))


FIND_STEPS = Operation(
    name="find_steps",
    method="GET",
    route="tenants/{tenantId}/steps",
    auth_level="FUNCTION",
    tag="traces",
    summary="Steps recorded with an idempotency key: was this step done, and with what output?",
    description="The steps of any execution recorded with the idempotency key, those that succeeded "
    "first (with their output, whole), at most 100. A replay skips a step that succeeded and reuses its "
    "output; the steps replays skipped come after those that succeeded (they name the step they reused).",
    query=StepsQuery,
    replies=(
        Reply(200, "The steps found (none: never recorded).", StepsFound, example={"steps": [_EXAMPLE_STEPS[1]]}),
    ),
    errors=(400, 404, 503),
)


@http_function(blueprint, FIND_STEPS)
def find_steps(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, StepsQuery)
    found = traces.steps_by_key(
        services().store, route_param(req, "tenantId"), params.idempotency_key, min_position=params.min_position
    )
    return json_response(page({}, "steps", (_step(s) for s in found)))


# --- failure counts and what could not be placed ----------------------------------------------------------

GET_FAILURE_COUNTS = Operation(
    name="get_failure_counts",
    method="GET",
    route="tenants/{tenantId}/metrics/failures",
    auth_level="FUNCTION",
    tag="traces",
    summary="Executions started, succeeded and failed, messages dead-lettered, per hour or day",
    description="Per UTC hour (or day: the sum of its hours), workflow and message type (the trigger's "
    "name): executions started (in the hour of their start), succeeded and failed (in the hour of their "
    "end), and messages dead-lettered. Buckets whose start is in [from truncated to its bucket, to), in "
    "time order; at most 10,000 (`truncated` says when more matched).",
    query=FailureCountsQuery,
    replies=(
        Reply(
            200,
            "The counts.",
            FailureCounts,
            example={
                "granularity": "hour",
                "buckets": [
                    {"start": "2026-12-01T09:00:00Z", "workflowId": "deal-won-workflow", "messageType": "deal.won",
                     "started": 40, "succeeded": 37, "failed": 3, "deadLettered": 1},
                ],
                "truncated": False,
            },
        ),
    ),
    errors=(400, 404, 503),
)  # fmt: skip


@http_function(blueprint, GET_FAILURE_COUNTS)
def get_failure_counts(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, FailureCountsQuery)
    buckets, truncated = traces.failure_counts(
        services().store,
        route_param(req, "tenantId"),
        granularity=params.granularity,
        counted_from=params.counted_from,
        counted_to=params.counted_to,
        workflow_id=params.workflow_id,
        min_position=params.min_position,
    )
    items = [
        FailureBucket(
            start=b.start,
            workflow_id=b.workflow_id,
            message_type=b.message_type,
            started=b.started,
            succeeded=b.succeeded,
            failed=b.failed,
            dead_lettered=b.dead_lettered,
        )
        for b in buckets
    ]
    return json_response(FailureCounts(granularity=params.granularity, buckets=items, truncated=truncated))


GET_UNPLACED = Operation(
    name="get_unplaced_trace_events",
    method="GET",
    route="tenants/{tenantId}/traces/unplaced",
    auth_level="FUNCTION",
    tag="traces",
    summary="Trace events the views could not place, and why",
    description="How many trace events the executions view could not place (a payload it cannot read, a "
    "step of an execution whose start is not recorded, a step reported for two executions, an execution "
    "reported in two instances), and the most recent of them. The log keeps each as it arrived; one that "
    "was only early moves into its trace when what it waited for arrives.",
    query=UnplacedQuery,
    replies=(
        Reply(
            200,
            "The unplaced trace events.",
            UnplacedTraceEvents,
            example={
                "count": 1,
                "events": [
                    {
                        "eventId": "5f0c2b4e-6a51-4d8e-9f3a-2c1b7d6e9d1e",
                        "eventType": "StepCompleted",
                        "executionId": "exec-9",
                        "stepId": "s1",
                        "reason": "unknown-execution",
                        "detail": "no ExecutionStarted of execution 'exec-9' is recorded (yet)",
                        "recordedAt": "2026-12-01T09:00:00Z",
                    }
                ],
            },
        ),
    ),
    errors=(400, 404, 503),
)


@http_function(blueprint, GET_UNPLACED)
def get_unplaced_trace_events(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, UnplacedQuery)
    count, rows = traces.unplaced_trace_events(
        services().store, route_param(req, "tenantId"), params.limit, min_position=params.min_position
    )
    events = [
        UnplacedTraceEvent(
            event_id=str(r.event_id),
            event_type=r.event_type,
            execution_id=r.execution_id,
            step_id=r.step_id,
            reason=r.reason,
            detail=r.detail,
            recorded_at=r.recorded_at,
        )
        for r in rows
    ]
    return json_response(UnplacedTraceEvents(count=count, events=events))


OPERATIONS = (
    LIST_MESSAGES,
    GET_MESSAGE,
    GET_MESSAGE_EXECUTIONS,
    LIST_EXECUTIONS,
    GET_EXECUTION,
    FIND_STEPS,
    GET_FAILURE_COUNTS,
    GET_UNPLACED,
)
