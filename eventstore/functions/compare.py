"""Compare runs: two executions of a received message side by side, step by step (inputs, outputs,
durations, errors and what differs), by default its latest failed execution beside the one that succeeded
after it. The rules are in `eventstore.query.compare` and docs/traces.md ("Comparing runs")."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from eventstore.errors import InvalidInput
from eventstore.functions.traces import execution_item, trace_error
from eventstore.http.compare_models import (
    MAX_EXECUTION_ID_LENGTH,
    ComparedExecution,
    ComparedStep,
    CompareQuery,
    RunComparison,
    StepComparison,
)
from eventstore.http.examples import EXAMPLE_INSTANCE
from eventstore.http.exchange import event_id_param, json_response, parse_query, route_param
from eventstore.http.models import Problem, SkippedFor
from eventstore.http.problems import PROBLEM_CONTENT_TYPE, HttpProblem
from eventstore.http.routes import Operation, Reply, http_function
from eventstore.query import compare
from eventstore.query.traces import ExecutionRow, StepTrace
from eventstore.services import services
from eventstore.views.traces import label

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]


def _execution_id(value: str | None, name: str) -> str | None:
    """A query's execution id, checked as the view checks the ids it keeps (text PostgreSQL can hold)."""
    if value is not None and label(value, MAX_EXECUTION_ID_LENGTH) is None:
        raise InvalidInput(
            f"{name} must be 1 to {MAX_EXECUTION_ID_LENGTH} characters without control characters", field=name
        )
    return value


def _splice(head: str, members: dict[str, str]) -> str:
    """The JSON object `head` with `members` added as the JSON texts given: inputs and outputs go in as the
    view keeps them (a model would refuse JSON nested as deep as a payload may be)."""
    tail = ",".join(f"{json.dumps(name)}:{text}" for name, text in members.items())
    return f"{head[:-1]},{tail}}}"


def _execution(side: compare.Side) -> dict[str, Any]:
    row: ExecutionRow = side.trace.execution
    item = ComparedExecution(**dict(execution_item(row)), duration_ms=side.duration_ms, chosen=side.chosen)
    return item.model_dump(mode="json", by_alias=True)


def _step(step: StepTrace | None) -> str:
    if step is None:
        return "null"
    row = step.row
    item = ComparedStep(
        step_id=row.step_id,
        status=row.status,
        attempts=row.attempts,
        idempotency_key=row.idempotency_key,
        duration_ms=compare.duration_ms(row.started_at, row.completed_at),
        started_at=row.started_at,
        completed_at=row.completed_at,
        input=None,
        output=None,
        input_event_id=str(row.input_event_id) if row.input_event_id else None,
        output_event_id=str(step.output_event_id) if step.output_event_id else None,
        error=trace_error(row.error),
        skipped_for=(
            SkippedFor(execution_id=row.skipped_for_execution_id, step_id=row.skipped_for_step_id)
            if row.skipped_for_execution_id is not None and row.skipped_for_step_id is not None
            else None
        ),
    )
    head = item.model_dump_json(by_alias=True, exclude={"input", "output"})
    return _splice(head, {"input": step.input or "null", "output": step.output or "null"})


def _pair(pair: compare.StepPair) -> str:
    head = StepComparison(
        name=pair.name, occurrence=pair.occurrence, differences=list(pair.differences), left=None, right=None
    ).model_dump_json(by_alias=True, exclude={"left", "right"})
    return _splice(head, {"left": _step(pair.left), "right": _step(pair.right)})


def _answer(found: compare.Comparison) -> bytes:
    head = json.dumps(
        {
            "messageEventId": str(found.message_event_id),
            "left": _execution(found.left),
            "right": _execution(found.right),
        },
        ensure_ascii=False,
    )
    return _splice(head, {"steps": "[" + ",".join(_pair(p) for p in found.steps) + "]"}).encode()


def _refused(exc: compare.CompareRefused) -> HttpProblem:
    extensions: dict[str, Any] = {"field": exc.side}
    if exc.execution_id is not None:
        extensions["executionId"] = exc.execution_id
    if isinstance(exc, compare.UnknownExecution):
        return HttpProblem(404, "Unknown execution", exc.detail, slug="unknown-execution", extensions=extensions)
    if isinstance(exc, compare.NotComparable):
        return HttpProblem(409, "Not comparable", exc.detail, slug="not-comparable", extensions=extensions)
    return HttpProblem(409, "Nothing to compare", exc.detail, slug="nothing-to-compare", extensions=extensions)


# --- the operation ------------------------------------------------------------------------------------------

_MESSAGE_ID = "7e7033bf-3e51-4df6-94d0-a51fc0f9afc3"
_KEY = f"{_MESSAGE_ID}/send-email"
_MAIL_ERROR = {"message": "mail answered 503 Service Unavailable", "statusCode": 503, "body": '{"retryAfter": 1}'}


def _example_execution(execution_id: str, status: str, chosen: str, **changes: Any) -> dict[str, Any]:
    return {
        "executionId": execution_id, "messageEventId": _MESSAGE_ID, "operationId": None,
        "workflowId": "deal-won-workflow", "workflowInstanceId": EXAMPLE_INSTANCE,
        "startedAt": "2026-12-01T09:00:01Z", "completedAt": "2026-12-01T09:00:09Z", "status": status,
        "replayOf": None, "replayId": None, "error": None, "deadLettered": False, "durationMs": 8000,
        "chosen": chosen, **changes,
    }  # fmt: skip


_EXAMPLE = {
    "messageEventId": _MESSAGE_ID,
    "left": _example_execution(
        "exec-1", "failed", "latest-failed", error={"message": "send-email failed", "statusCode": None, "body": None}
    ),
    "right": _example_execution(
        "exec-2", "succeeded", "latest-succeeded", startedAt="2026-12-01T10:00:00Z",
        completedAt="2026-12-01T10:00:01Z", durationMs=1000, replayOf="exec-1",
        replayId="0b6f7c1e-2d3a-4b5c-8d9e-0f1a2b3c4d5e",
    ),
    "steps": [
        {
            "name": "create-crm-record", "occurrence": 1, "differences": ["status"],
            "left": {"stepId": "6f0b9a52-3c1e-4b43-9d0e-3f1f4c1e2a01", "status": "succeeded", "attempts": 1,
                     "idempotencyKey": f"{_MESSAGE_ID}/create-crm-record", "durationMs": 1000,
                     "startedAt": "2026-12-01T09:00:01Z", "completedAt": "2026-12-01T09:00:02Z",
                     "input": {"dealId": "42"}, "output": {"recordId": "crm-7"}, "inputEventId": None,
                     "outputEventId": None, "error": None, "skippedFor": None},
            "right": {"stepId": "9a1c33e0-5f2b-4c1d-8e3f-7a6b5c4d3e2f", "status": "skipped", "attempts": 1,
                      "idempotencyKey": f"{_MESSAGE_ID}/create-crm-record", "durationMs": None,
                      "startedAt": None, "completedAt": "2026-12-01T10:00:00Z", "input": None,
                      "output": {"recordId": "crm-7"}, "inputEventId": None, "outputEventId": None, "error": None,
                      "skippedFor": {"executionId": "exec-1", "stepId": "6f0b9a52-3c1e-4b43-9d0e-3f1f4c1e2a01"}},
        },
        {
            "name": "send-email", "occurrence": 1, "differences": ["status", "attempts", "output", "error"],
            "left": {"stepId": "0c5d7e1a-9b2f-4f65-8a11-55e0b2c7d302", "status": "failed", "attempts": 3,
                     "idempotencyKey": _KEY, "durationMs": 7000, "startedAt": "2026-12-01T09:00:02Z",
                     "completedAt": "2026-12-01T09:00:09Z", "input": {"to": "buyer@contoso.example"},
                     "output": None, "inputEventId": None, "outputEventId": None, "error": _MAIL_ERROR,
                     "skippedFor": None},
            "right": {"stepId": "4e8d2b7a-1c3f-4a5e-9b0d-6f7e8a9b0c1d", "status": "succeeded", "attempts": 1,
                      "idempotencyKey": _KEY, "durationMs": 1000, "startedAt": "2026-12-01T10:00:00Z",
                      "completedAt": "2026-12-01T10:00:01Z", "input": {"to": "buyer@contoso.example"},
                      "output": {"sent": True}, "inputEventId": None, "outputEventId": None, "error": None,
                      "skippedFor": None},
        },
    ],
}  # fmt: skip

COMPARE_RUNS = Operation(
    name="compare_runs",
    method="GET",
    route="tenants/{tenantId}/messages/{eventId}/compare",
    auth_level="FUNCTION",
    tag="traces",
    summary="Two executions of a message side by side, step by step",
    description="Two executions (left, right) with their steps paired by name in order (the n-th step of a "
    "name on each side), each side's status, attempts, duration, input, output (whole), error and skip, and "
    "what differs. By default the message's latest failed execution (left) beside its latest succeeded "
    "execution (right: the replay that fixed it), else beside the latest succeeded execution of the same "
    "workflow; `chosen` says which rule picked each. A named left must have processed this message; a named "
    "right this message or another of the same workflow.",
    query=CompareQuery,
    replies=(
        Reply(200, "The comparison.", RunComparison, example=_EXAMPLE),
        Reply(
            409,
            "Nothing to compare: no failed execution for the left, no succeeded one for the right, or the same "
            "execution on both sides (nothing-to-compare); or a named execution this message's comparison may not "
            "show (not-comparable). `field` names the side.",
            Problem,
            content_type=PROBLEM_CONTENT_TYPE,
            example={
                "type": "urn:eventstore:problem:nothing-to-compare",
                "title": "Nothing to compare",
                "status": 409,
                "detail": f"message {_MESSAGE_ID} has no failed execution to compare; name one as left",
                "field": "left",
            },
        ),
    ),
    errors=(400, 404, 503),
)


@http_function(blueprint, COMPARE_RUNS)
def compare_runs(req: func.HttpRequest) -> func.HttpResponse:
    event_id = event_id_param(req)
    params = parse_query(req, CompareQuery)
    left, right = _execution_id(params.left, "left"), _execution_id(params.right, "right")
    try:
        found = compare.compare_runs(
            services().store,
            route_param(req, "tenantId"),
            event_id,
            left=left,
            right=right,
            min_position=params.min_position,
        )
    except compare.CompareRefused as exc:
        raise _refused(exc) from None
    if found is None:
        raise HttpProblem(
            404,
            "Unknown message",
            f"no message {str(event_id)!r} is recorded for this tenant",
            slug="unknown-message",
            extensions={"eventId": str(event_id)},
        )
    return json_response(_answer(found))


OPERATIONS = (COMPARE_RUNS,)
