"""The engine-side client: its retries against a real local HTTP server told what to answer, and what it
records and reads back through the local host over real HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from uuid import uuid4

import pytest

from eventstore.client import (
    DestinationError,
    EventStoreClient,
    OutcomeItem,
    RequestRefused,
    RetryPolicy,
    ServerError,
    StoreUnreachable,
    TraceEventType,
    TraceRecorder,
)
from eventstore.client.transport import retry_after_seconds
from eventstore.event_types import EventType
from eventstore_local.standins.http_server import LocalServer, QuietHandler
from tests.helpers import random_tenant_id

FAST = RetryPolicy(attempts=3, min_wait=0.01, max_wait=0.02, timeout=5)

# ---------------------------------------------------------------------------------------------------
# Retries, against a scripted server


class _Handler(QuietHandler):
    def do_POST(self) -> None:
        self.server.owner.answer(self)

    def do_GET(self) -> None:
        self.server.owner.answer(self)


class ScriptedServer(LocalServer):
    """Answers requests from a script of (status, headers, JSON body); the last entry repeats."""

    handler = _Handler

    def __init__(self, *script: tuple[int, dict[str, str], Any]) -> None:
        super().__init__()
        self.script = list(script)
        self.bodies: list[bytes] = []
        self.times: list[float] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def answer(self, handler: _Handler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self._lock:
            self.bodies.append(body)
            self.times.append(time.monotonic())
            status, headers, document = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        text = json.dumps(document).encode()
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        if "Content-Type" not in headers:
            headers["Content-Type"] = "application/json"
            handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(text)))
        handler.end_headers()
        handler.wfile.write(text)


APPENDED = {"eventIds": [str(uuid4())], "sequenceNumbers": [1], "globalPositions": [7], "version": 1, "repeated": False}
PROBLEM = {"Content-Type": "application/problem+json"}


def _item() -> OutcomeItem:
    return OutcomeItem(event_id=uuid4(), event_type="StepStarted", payload={"executionId": "e"})


@pytest.fixture
def scripted(request: pytest.FixtureRequest) -> Iterator[ScriptedServer]:
    with ScriptedServer(*request.param) as server:
        yield server


@pytest.mark.parametrize(
    "scripted",
    [[(503, {**PROBLEM, "Retry-After": "1"}, {"title": "Store unavailable", "detail": "down"}), (201, {}, APPENDED)]],
    indirect=True,
)
def test_a_503_is_retried_after_its_retry_after_and_the_repeat_is_the_same_event(scripted: ScriptedServer) -> None:
    client = EventStoreClient(scripted.url, retry=FAST)
    answer = client.append("t", "i", [_item()])
    assert answer.version == 1 and answer.global_positions == [7]
    assert len(scripted.bodies) == 2 and scripted.bodies[0] == scripted.bodies[1]  # one event id: stored once
    assert scripted.times[1] - scripted.times[0] >= 0.95  # Retry-After: 1 honoured, not the 10 ms backoff


@pytest.mark.parametrize(
    "scripted", [[(500, {}, {"detail": "boom"}), (502, {}, {}), (201, {}, APPENDED)]], indirect=True
)
def test_5xx_answers_are_retried_with_backoff(scripted: ScriptedServer) -> None:
    assert EventStoreClient(scripted.url, retry=FAST).append("t", "i", [_item()]).version == 1
    assert len(scripted.bodies) == 3


@pytest.mark.parametrize(
    "scripted", [[(503, PROBLEM, {"type": "urn:eventstore:problem:store-unavailable"})]], indirect=True
)
def test_retries_are_bounded_then_a_typed_error(scripted: ScriptedServer) -> None:
    started = time.monotonic()
    with pytest.raises(ServerError) as raised:
        EventStoreClient(scripted.url, retry=FAST).append("t", "i", [_item()])
    assert len(scripted.bodies) == FAST.attempts and time.monotonic() - started < 2
    assert raised.value.status == 503 and raised.value.kind == "store-unavailable"


@pytest.mark.parametrize(
    "scripted",
    [
        [
            (
                400,
                PROBLEM,
                {
                    "type": "urn:eventstore:problem:invalid-event-type",
                    "title": "Unknown event type",
                    "status": 400,
                    "detail": "unknown event type 'Nope'",
                },
            ),
            (201, {}, APPENDED),
        ]
    ],
    indirect=True,
)
def test_a_4xx_is_never_retried_and_names_the_problem(scripted: ScriptedServer) -> None:
    with pytest.raises(RequestRefused) as raised:
        EventStoreClient(scripted.url, retry=FAST).append("t", "i", [_item()])
    assert len(scripted.bodies) == 1
    error = raised.value
    assert (error.status, error.kind, error.title) == (400, "invalid-event-type", "Unknown event type")
    assert error.detail == "unknown event type 'Nope'" and "invalid-event-type" in str(error)


def test_no_answer_at_all_is_retried_then_raised_as_unreachable() -> None:
    with ScriptedServer((201, {}, APPENDED)) as server:
        url = server.url
    started = time.monotonic()
    with pytest.raises(StoreUnreachable):
        EventStoreClient(url, retry=FAST).append("t", "i", [_item()])
    assert time.monotonic() - started < 2


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("5", now) == 5.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None


def test_the_trace_event_types_are_the_stores() -> None:
    assert [EventType.parse(t.value).value for t in TraceEventType] == [t.value for t in TraceEventType]


# ---------------------------------------------------------------------------------------------------
# Through the local host


@pytest.fixture
def onboarded(api_url: str) -> str:
    tenant = random_tenant_id()
    with EventStoreClient(api_url) as client:
        client.onboard_tenant(tenant)
    return tenant


def _history(client: EventStoreClient, tenant: str, instance: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = client.transport.get_json(f"tenants/{tenant}/instances/{instance}/events")["events"]
    return events


def test_an_execution_is_recorded_in_the_instance_stream_with_its_attempts(api_url: str, onboarded: str) -> None:
    recorder = TraceRecorder(api_url, onboarded, instance_id="deal-42", workflow_id="deals")
    message_id = uuid4()
    with pytest.raises(DestinationError), recorder.execution(message_event_id=message_id, operation_id="op-1") as run:
        with run.step("create-crm-record", input={"deal": 42}, idempotency_key="deal-42/crm") as step:
            step.output = {"recordId": "crm-1"}

        def send(step: Any) -> None:
            raise DestinationError("email answered 500", status_code=500, body='{"error": "down"}')

        run.run_step("send-email", send, input={"to": "a@b.example"}, attempts=2, backoff=0.01)

    events = _history(recorder.client, onboarded, "deal-42")
    assert [e["eventType"] for e in events] == [
        "ExecutionStarted",
        "StepStarted",
        "StepCompleted",
        "StepStarted",
        "StepFailed",
        "StepStarted",
        "StepFailed",
        "ExecutionFailed",
    ]
    assert len({e["eventId"] for e in events}) == 8
    assert {e["workflowId"] for e in events} == {"deals"} and {e["correlationId"] for e in events} == {run.execution_id}
    started, crm_started, crm_done, *_, last_failure, failed = (e["payload"] for e in events)
    assert started == {
        "executionId": run.execution_id,
        "messageEventId": str(message_id),
        "operationId": "op-1",
        "replayOf": None,
        "replayId": None,
    }
    assert crm_started["input"] == {"deal": 42} and crm_started["idempotencyKey"] == "deal-42/crm"
    assert crm_done["output"] == {"recordId": "crm-1"} and crm_done["stepId"] == crm_started["stepId"]
    assert (last_failure["name"], last_failure["attempt"]) == ("send-email", 2)
    assert last_failure["error"] == {"message": "email answered 500", "statusCode": 500, "body": '{"error": "down"}'}
    assert events[4]["payload"]["stepId"] == last_failure["stepId"]  # attempts share the step id
    assert failed == {"executionId": run.execution_id, "error": last_failure["error"], "deadLettered": False}


def test_a_refused_request_raises_the_problem_of_the_store(api_url: str) -> None:
    recorder = TraceRecorder(api_url, random_tenant_id(), instance_id="deal-1")
    with pytest.raises(RequestRefused) as raised, recorder.execution():
        pass
    assert (raised.value.status, raised.value.kind) == (404, "unknown-tenant")


def test_the_trace_reads_back_whole_and_a_replay_skips_a_completed_step(api_url: str, onboarded: str) -> None:
    recorder = TraceRecorder(api_url, onboarded, instance_id="deal-7", workflow_id="deals")
    with pytest.raises(DestinationError), recorder.execution() as first:
        first.run_step(
            "create-crm-record", lambda step: {"recordId": "crm-7"}, input={"n": 7}, idempotency_key="d7/crm"
        )

        def fail(step: Any) -> None:
            raise DestinationError("email answered 503", status_code=503, body="busy")

        first.run_step(
            "send-email", fail, input={"to": "x@y.example"}, idempotency_key="d7/mail", attempts=3, backoff=0
        )

    trace = first.trace(wait=True)
    assert (trace.status, trace.workflow_instance_id, len(trace.steps)) == ("failed", "deal-7", 2)
    crm, mail = sorted(trace.steps, key=lambda s: s.name or "")
    assert (crm.status, crm.attempts, crm.output) == ("succeeded", 1, {"recordId": "crm-7"})
    assert (mail.status, mail.attempts, mail.input) == ("failed", 3, {"to": "x@y.example"})
    assert mail.error is not None and (mail.error.status_code, mail.error.body) == (503, "busy")
    assert [(a.attempt, a.status) for a in mail.attempt_history] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert trace.error is not None and trace.error.status_code == 503
    assert trace.failed_step() == mail

    called: list[int] = []
    with recorder.execution(replay_of=first.execution_id) as replay:
        done = replay.completed_step("d7/crm")
        assert done is not None and done.output == {"recordId": "crm-7"}
        output = replay.run_step(
            "create-crm-record", lambda step: called.append(1), input={"n": 7}, idempotency_key="d7/crm"
        )
        assert output == {"recordId": "crm-7"} and called == []
        assert replay.completed_step("d7/mail") is None
        replay.run_step(
            "send-email", lambda step: {"messageId": "m-1"}, input={"to": "x@y.example"}, idempotency_key="d7/mail"
        )
    assert replay.skipped_steps == ["create-crm-record"]
    again = replay.trace(wait=True)
    assert (again.status, again.replay_of, [(s.name, s.status) for s in again.steps]) == (
        "succeeded",
        first.execution_id,
        [("create-crm-record", "skipped"), ("send-email", "succeeded")],
    )
    skip = again.skipped_steps()[0]
    assert skip.skipped_for is not None and (skip.skipped_for.execution_id, skip.skipped_for.step_id) == (
        crm.execution_id,
        crm.step_id,
    )
    assert (skip.output, skip.idempotency_key, skip.attempts) == ({"recordId": "crm-7"}, "d7/crm", 1)
    assert [(a.attempt, a.status) for a in skip.attempt_history] == [(1, "skipped")]


def test_a_replay_records_its_replay_id_and_each_skip_names_the_step_that_did_the_work(
    api_url: str, onboarded: str
) -> None:
    recorder = TraceRecorder(api_url, onboarded, instance_id="deal-8", workflow_id="deals")
    with recorder.execution() as original:
        assert not original.replaying
        original.run_step("create-crm-record", lambda step: {"recordId": "crm-8"}, idempotency_key="d8/crm")
    crm = original.steps[0]

    replays = [uuid4(), uuid4()]
    runs = []
    called: list[int] = []
    for replay_id in replays:  # two replays one after the other: the second must not reuse the first's skip
        with recorder.execution(replay_id=replay_id) as run:
            assert run.replaying  # a replay id alone makes it a replay
            output = run.run_step("create-crm-record", lambda step: called.append(1), idempotency_key="d8/crm")
        assert (output, called, run.skipped_steps) == ({"recordId": "crm-8"}, [], ["create-crm-record"])
        runs.append(run)

    for run, replay_id in zip(runs, replays, strict=True):
        trace = run.trace(wait=True)
        assert (trace.status, trace.replay_id, trace.replay_of) == ("succeeded", str(replay_id), None)
        [skip] = trace.steps
        assert skip.status == "skipped" and skip.skipped_for is not None
        assert (skip.skipped_for.execution_id, skip.skipped_for.step_id) == (original.execution_id, crm.step_id)
    # The events as recorded: ExecutionStarted with the replay id, StepSkipped naming the step reused.
    events = _history(recorder.client, onboarded, "deal-8")
    starts = [e["payload"] for e in events if e["eventType"] == "ExecutionStarted"]
    assert [s["replayId"] for s in starts] == [None, *(str(r) for r in replays)]
    skips = [e["payload"] for e in events if e["eventType"] == "StepSkipped"]
    assert skips == [
        {
            "executionId": run.execution_id,
            "stepId": run.steps[0].step_id,
            "name": "create-crm-record",
            "attempt": 1,
            "idempotencyKey": "d8/crm",
            "skippedFor": {"executionId": original.execution_id, "stepId": crm.step_id},
        }
        for run in runs
    ]
    # The steps found for the key: the step that did the work first.
    found = recorder.client.steps(onboarded, "d8/crm")
    assert [(s.step_id, s.status) for s in found] == [
        (crm.step_id, "succeeded"),
        *((run.steps[0].step_id, "skipped") for run in runs),
    ]

    # Not replaying (and not asked to skip): the step runs again.
    with recorder.execution() as fresh:
        fresh.run_step("create-crm-record", lambda step: {"recordId": "crm-9"}, idempotency_key="d8/crm")
    assert fresh.skipped_steps == [] and fresh.trace(wait=True).steps[0].status == "succeeded"
