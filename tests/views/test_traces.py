"""The executions view (traces) on a real PostgreSQL: a whole trace from its events, the merge rules that
make it the same whatever the order and repeats of delivery (a property test), bad input listed as
unplaced without stopping the view, and large inputs kept by reference and returned whole.

The helpers here (planned events with chosen recording times, running the trace views, their contents)
are shared by the messages and failure-count tests."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import EventStore, NewEvent, Settings, TenantEvents, instance_stream_id
from eventstore.query import traces as trace_reads
from eventstore.store import AUDIT_STREAM_ID
from eventstore.views import EXECUTIONS, FAILURE_COUNTS, MESSAGES, VIEWS, View, ViewRunner
from eventstore.views.health import views_health
from eventstore.views.traces import INLINE_DATA_LIMIT
from tests.helpers import random_tenant_id

JSON = "application/json"
BASE = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
"""Events are stamped with chosen times (not the database's now()), so the same events make the same
rows whatever order they are appended in."""
WORKFLOW = "deal-won-workflow"
TRACE_VIEWS = (MESSAGES, EXECUTIONS, FAILURE_COUNTS)


class Clock:
    """What the timed store stamps the next append with."""

    def __init__(self) -> None:
        self.now = BASE

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Timed:
    store: EventStore
    clock: Clock

    def tenant(self) -> str:
        tenant_id = random_tenant_id()
        self.store.onboard_tenant(tenant_id)
        return tenant_id


def timed_store(settings: Settings) -> Iterator[Timed]:
    """A store that stamps each append with `Timed.clock.now` (the `timed` fixture of each module)."""
    clock = Clock()
    with EventStore(settings, clock=clock) as store:
        yield Timed(store, clock)


@pytest.fixture(scope="module")
def timed(settings: Settings) -> Iterator[Timed]:
    yield from timed_store(settings)


@dataclass(frozen=True)
class Planned:
    """One event to append, to which stream, stamped when."""

    stream_id: str
    event: NewEvent
    at: datetime


def at(minutes: float) -> datetime:
    return BASE + timedelta(minutes=minutes)


def trace(
    kind: str,
    payload: Any,
    *,
    minute: float = 0,
    instance: str = "deal-1",
    workflow: str | None = WORKFLOW,
    event_id: UUID | None = None,
    content_type: str = JSON,
) -> Planned:
    body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
    event = NewEvent(
        event_id=event_id or uuid4(),
        event_type=kind,
        payload=body,
        content_type=content_type,
        workflow_id=workflow,
        workflow_instance_id=instance,
    )
    return Planned(instance_stream_id(instance), event, at(minute))


def message(
    *,
    minute: float = 0,
    trigger_name: str = "deal.won",
    instance: str = "deal-1",
    operation_id: UUID | None = None,
    trigger_id: str | None = None,
) -> Planned:
    """A Marain trigger envelope received in the audit stream (its event id is its operationId)."""
    operation = operation_id or uuid4()
    envelope = {
        "contentType": "application/vnd.marain.workflows.hosted.messageenvelope",
        "tenantId": "ignored-here",
        "isTrigger": True,
        "isStartWorkflowRequest": False,
        "trigger": {"id": trigger_id or str(uuid4()), "triggerName": trigger_name, "subjects": [instance]},
        "operationId": str(operation),
        "properties": {"WorkflowInstanceId": instance},
    }
    event = NewEvent(
        event_id=operation,
        event_type="TriggerReceived",
        payload=json.dumps(envelope).encode(),
        workflow_instance_id=instance,
        correlation_id=str(operation),
        source_system="tests",
    )
    return Planned(AUDIT_STREAM_ID, event, at(minute))


def started(execution: str, message_id: UUID | None = None, **extra: Any) -> dict[str, Any]:
    return {"executionId": execution, "messageEventId": str(message_id) if message_id else None, **extra}


def step(execution: str, step_id: str, name: str, attempt: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "executionId": execution,
        "stepId": step_id,
        "name": name,
        "attempt": attempt,
        "idempotencyKey": f"{execution}/{name}",
        **extra,
    }


def error(message: str, status: int | None = None, body: str | None = None) -> dict[str, Any]:
    return {"message": message, "statusCode": status, "body": body}


def record(timed: Timed, tenant_id: str, planned: Sequence[Planned]) -> None:
    tenant = timed.store.tenant(tenant_id)
    for item in planned:
        timed.clock.now = item.at
        tenant.append(item.stream_id, [item.event])


def run_views(store: EventStore, tenant_id: str, batch: int = 500, views: Sequence[View] = TRACE_VIEWS) -> None:
    """Bring the trace views up to date with every event appended so far; none of them may stop. (The
    all-stream is read below the oldest transaction open on the server, which other work may hold open
    for a moment: the runs go on until no event is left.)"""
    runner = ViewRunner(store, views, batch_events=batch)
    tenant_views = store.views(tenant_id)
    deadline = time.monotonic() + 30
    while True:
        for run in runner.run_tenant(tenant_id):
            assert run.stopped is None and run.error is None, run
        states = tenant_views.states()
        if all(view.name in states and tenant_views.lag(states[view.name].checkpoint)[0] == 0 for view in views):
            return
        assert time.monotonic() < deadline, "the views did not catch up"
        time.sleep(0.02)


def contents(store: EventStore, tenant_id: str, views: Sequence[View] = TRACE_VIEWS) -> dict[str, list[str]]:
    """Every row of every table of `views`, sorted: what two runs are compared by."""
    found = {}
    tenant_views = store.views(tenant_id)
    for view in views:
        for name in view.tables:
            # The table is a placeholder the store renders as an identifier, never spliced text.
            rows = tenant_views.fetch(view.tables, "SELECT * FROM {" + name + "}")  # noqa: S608
            found[f"{view.name}.{name}"] = sorted(repr(r) for r in rows)
    return found


def two_step_execution(message_id: UUID) -> list[Planned]:
    """docs/traces.md's example: create a CRM record, then send an email that fails (503) on attempt 1
    and succeeds on attempt 2."""
    crm_input = {"dealId": "42", "customer": "Contoso", "amount": 1200}
    email_input = {"to": "buyer@contoso.example", "template": "deal-won"}
    return [
        trace("ExecutionStarted", started("exec-1", message_id), minute=1),
        trace("StepStarted", step("exec-1", "step-crm", "create-crm-record", input=crm_input), minute=1.1),
        trace(
            "StepCompleted", step("exec-1", "step-crm", "create-crm-record", output={"recordId": "crm-7"}), minute=1.2
        ),
        trace("StepStarted", step("exec-1", "step-mail", "send-email", input=email_input), minute=1.3),
        trace(
            "StepFailed",
            step("exec-1", "step-mail", "send-email", error=error("mail answered 503", 503, '{"busy": true}')),
            minute=1.4,
        ),
        trace("StepStarted", step("exec-1", "step-mail", "send-email", 2, input=email_input), minute=1.5),
        trace("StepCompleted", step("exec-1", "step-mail", "send-email", 2, output={"sent": True}), minute=1.6),
        trace("ExecutionCompleted", {"executionId": "exec-1"}, minute=1.7),
    ]


def test_a_trace_is_the_execution_with_its_steps_attempts_inputs_and_outputs(timed: Timed) -> None:
    tenant_id = timed.tenant()
    deal = message(minute=0)
    record(timed, tenant_id, [deal, *two_step_execution(deal.event.event_id)])

    found = trace_reads.read_trace(timed.store, tenant_id, "exec-1")
    assert found is not None
    execution = found.execution
    assert (execution.status, execution.message_event_id, execution.workflow_id) == (
        "succeeded",
        deal.event.event_id,
        WORKFLOW,
    )
    assert (execution.workflow_instance_id, execution.started_at, execution.completed_at) == ("deal-1", at(1), at(1.7))
    crm, mail = found.steps
    assert (crm.row.name, crm.row.status, crm.row.attempts) == ("create-crm-record", "succeeded", 1)
    assert json.loads(crm.input or "") == {"dealId": "42", "customer": "Contoso", "amount": 1200}
    assert json.loads(crm.output or "") == {"recordId": "crm-7"}
    assert (mail.row.name, mail.row.status, mail.row.attempts, mail.row.error) == ("send-email", "succeeded", 2, None)
    assert (mail.row.started_at, mail.row.completed_at) == (at(1.3), at(1.6))
    history = json.loads(mail.row.attempt_history)
    assert [(h["attempt"], h["status"]) for h in history] == [(1, "failed"), (2, "succeeded")]
    assert history[0]["error"] == {"message": "mail answered 503", "statusCode": 503, "body": '{"busy": true}'}
    assert mail.row.idempotency_key == "exec-1/send-email"
    assert [s.row.step_id for s in trace_reads.steps_by_key(timed.store, tenant_id, "exec-1/send-email")] == [
        "step-mail"
    ]
    assert trace_reads.unplaced_trace_events(timed.store, tenant_id) == (0, [])


def test_a_failed_step_says_what_the_destination_answered(timed: Timed) -> None:
    tenant_id = timed.tenant()
    record(
        timed,
        tenant_id,
        [
            trace("ExecutionStarted", started("exec-f"), minute=0),
            trace("StepStarted", step("exec-f", "s1", "send-email", input={"to": "x"}), minute=1),
            trace("StepFailed", step("exec-f", "s1", "send-email", error=error("boom", 500, "<html>")), minute=2),
            trace("StepStarted", step("exec-f", "s1", "send-email", 2, input={"to": "x"}), minute=3),
            trace("StepFailed", step("exec-f", "s1", "send-email", 2, error=error("again", 502, "bad gw")), minute=4),
            trace("ExecutionFailed", {"executionId": "exec-f", "error": error("send-email failed")}, minute=5),
        ],
    )
    found = trace_reads.read_trace(timed.store, tenant_id, "exec-f")
    assert found is not None
    assert found.execution.status == "failed"
    assert json.loads(found.execution.error or "") == {"message": "send-email failed", "statusCode": None, "body": None}
    [failed] = found.steps
    assert (failed.row.status, failed.row.attempts, failed.row.completed_at) == ("failed", 2, at(4))
    assert json.loads(failed.row.error or "") == {"message": "again", "statusCode": 502, "body": "bad gw"}


def test_events_out_of_order_make_the_same_trace_once_all_have_arrived(timed: Timed) -> None:
    tenant_id, reference = timed.tenant(), timed.tenant()
    deal = message(minute=0)
    events = [deal, *two_step_execution(deal.event.event_id)]
    record(timed, reference, events)
    run_views(timed.store, reference)

    # The end first, then the steps' completions before their starts, the start of the execution last.
    backwards = list(reversed(events))
    record(timed, tenant_id, backwards[:4])
    run_views(timed.store, tenant_id)
    # Meanwhile the view says what it cannot place yet, and shows no execution.
    count, unplaced = trace_reads.unplaced_trace_events(timed.store, tenant_id)
    assert count == 4 and {u.reason for u in unplaced} == {"unknown-execution"}
    assert trace_reads.read_trace(timed.store, tenant_id, "exec-1") is None
    record(timed, tenant_id, backwards[4:])
    run_views(timed.store, tenant_id)
    assert contents(timed.store, tenant_id) == contents(timed.store, reference)
    assert trace_reads.unplaced_trace_events(timed.store, tenant_id)[0] == 0


def test_a_step_completed_twice_is_one_step_and_a_late_failure_of_an_earlier_attempt_changes_nothing(
    timed: Timed,
) -> None:
    tenant_id = timed.tenant()
    record(
        timed,
        tenant_id,
        [
            trace("ExecutionStarted", started("exec-2"), minute=0),
            trace("StepStarted", step("exec-2", "s1", "create", 2, input={"n": 1}), minute=2),
            trace("StepCompleted", step("exec-2", "s1", "create", 2, output={"id": 1}), minute=3),
            # The same completion again under another event id (an engine that retried its report).
            trace("StepCompleted", step("exec-2", "s1", "create", 2, output={"id": 1}), minute=3.5),
            # Attempt 1's failure arrives last.
            trace("StepFailed", step("exec-2", "s1", "create", 1, error=error("timeout")), minute=1),
        ],
    )
    run_views(timed.store, tenant_id)
    found = trace_reads.read_trace(timed.store, tenant_id, "exec-2")
    assert found is not None
    [only] = found.steps
    assert (only.row.status, only.row.attempts, only.row.error, only.output) == ("succeeded", 2, None, '{"id":1}')
    assert only.row.completed_at == at(3)
    assert [h["status"] for h in json.loads(only.row.attempt_history)] == ["failed", "succeeded"]


BAD_INPUT = [
    # (what, event type, payload bytes, content type, stream's instance or None for the audit stream, reason)
    ("not JSON", "StepStarted", b"not json at all", "text/plain", "bad-1", "not-json"),
    ("JSON that does not parse", "StepStarted", b'{"executionId": ', "text/plain", "bad-1", "not-json"),
    ("a number Python will not read", "StepStarted", b'{"executionId": "e", "n": 1' + b"0" * 5000 + b"}", JSON,
     "bad-1", "not-json"),
    ("an array", "ExecutionStarted", b"[1, 2]", JSON, "bad-1", "not-an-object"),
    ("no execution id", "StepCompleted", b'{"stepId": "s", "name": "n"}', JSON, "bad-1", "invalid-member"),
    ("a number for an id", "ExecutionStarted", b'{"executionId": 7}', JSON, "bad-1", "invalid-member"),
    ("a NUL in an id", "ExecutionStarted", b'{"executionId": "a\\u0000b"}', JSON, "bad-1", "invalid-member"),
    ("a lone surrogate", "StepStarted", b'{"executionId": "e", "stepId": "s", "name": "\\ud800"}', JSON, "bad-1",
     "invalid-member"),
    ("attempt 0", "StepStarted", b'{"executionId": "e", "stepId": "s", "name": "n", "attempt": 0}', JSON, "bad-1",
     "invalid-member"),
    ("attempt true", "StepStarted", b'{"executionId": "e", "stepId": "s", "name": "n", "attempt": true}', JSON,
     "bad-1", "invalid-member"),
    ("a message id that is no UUID", "ExecutionStarted", b'{"executionId": "e", "messageEventId": "x"}', JSON,
     "bad-1", "invalid-member"),
    ("deadLettered not a boolean", "ExecutionFailed", b'{"executionId": "e", "deadLettered": "yes"}', JSON, "bad-1",
     "invalid-member"),
    ("in the audit stream", "ExecutionStarted", b'{"executionId": "e"}', JSON, None, "not-in-an-instance-stream"),
]  # fmt: skip


def test_bad_input_is_listed_as_unplaced_and_never_stops_the_view(timed: Timed) -> None:
    tenant_id = timed.tenant()
    tenant = timed.store.tenant(tenant_id)
    bad = []
    for _, kind, payload, content_type, instance, _ in BAD_INPUT:
        new = NewEvent(event_id=uuid4(), event_type=kind, payload=payload, content_type=content_type)
        tenant.append(instance_stream_id(instance) if instance else AUDIT_STREAM_ID, [new])
        bad.append(new)
    # Events that read well but do not fit: a step of an execution never started, a step reported for
    # two executions, an execution's end reported in another instance.
    fits_not = [
        trace("ExecutionStarted", started("exec-a"), minute=0),
        trace("ExecutionStarted", started("exec-b"), minute=0),
        trace("StepStarted", step("exec-a", "shared", "n"), minute=1),
        trace("StepCompleted", step("exec-b", "shared", "n"), minute=2),
        trace("StepStarted", step("exec-none", "s9", "n"), minute=3),
        trace("ExecutionCompleted", {"executionId": "exec-a"}, minute=4, instance="deal-2"),
        trace("ExecutionCompleted", {"executionId": "exec-a"}, minute=5),
    ]
    record(timed, tenant_id, fits_not)
    run_views(timed.store, tenant_id, views=VIEWS)

    health = views_health(timed.store, tenant_id, VIEWS)
    assert all(v.stopped is None and v.lag_events == 0 for v in health.views)
    count, unplaced = trace_reads.unplaced_trace_events(timed.store, tenant_id)
    reasons = {u.event_id: u.reason for u in unplaced}
    assert count == len(BAD_INPUT) + 3
    for new, (what, *_, reason) in zip(bad, BAD_INPUT, strict=True):
        assert reasons[new.event_id] == reason, what
    assert reasons[fits_not[3].event.event_id] == "step-in-two-executions"
    assert reasons[fits_not[4].event.event_id] == "unknown-execution"
    assert reasons[fits_not[5].event.event_id] == "other-instance"
    # What fits is placed: exec-a owns the shared step and ended in its own instance.
    found = trace_reads.read_trace(timed.store, tenant_id, "exec-a")
    assert found is not None and found.execution.status == "succeeded" and found.execution.completed_at == at(5)
    assert [s.row.step_id for s in found.steps] == ["shared"]
    # The log keeps what arrived, byte for byte.
    for new in bad:
        stored = tenant.get_event(new.event_id)
        assert stored is not None and tenant.payload_of(stored) == new.payload


def test_a_bug_that_raises_still_stops_the_view(timed: Timed) -> None:
    tenant_id = timed.tenant()
    record(timed, tenant_id, [trace("ExecutionStarted", started("exec-x"), minute=0)])

    def broken(writer: Any, events: Any) -> None:
        raise ZeroDivisionError("a bug")

    [run] = ViewRunner(timed.store, [View(EXECUTIONS.name, EXECUTIONS.tables, broken, "")]).run_tenant(tenant_id)
    assert run.stopped is not None and "a bug" in run.stopped


def test_a_large_input_is_kept_by_reference_and_read_back_whole(timed: Timed) -> None:
    tenant_id = timed.tenant()
    big = {"blob": "é" * (INLINE_DATA_LIMIT // 2 + 1)}  # over the limit in UTF-8 bytes, not in characters
    record(
        timed,
        tenant_id,
        [
            trace("ExecutionStarted", started("exec-big"), minute=0),
            trace("StepStarted", step("exec-big", "s1", "upload", input=big), minute=1),
            trace("StepCompleted", step("exec-big", "s1", "upload", output=[big, big]), minute=2),
        ],
    )
    run_views(timed.store, tenant_id)
    found = trace_reads.read_trace(timed.store, tenant_id, "exec-big")
    assert found is not None
    [upload] = found.steps
    assert upload.row.input is None and upload.row.input_event_id is not None
    assert upload.row.output is None and upload.row.output_event_id is not None
    assert json.loads(upload.input or "") == big and json.loads(upload.output or "") == [big, big]


def test_a_trace_event_kept_in_blob_storage_is_read_from_there_and_placed(settings: Settings, azurite: Any) -> None:
    blob_settings = settings.model_copy(
        update={"blob_connection_string": azurite.connection_string, "inline_payload_limit": 1024}
    )
    with EventStore(blob_settings) as store:
        tenant_id = random_tenant_id()
        store.onboard_tenant(tenant_id)
        tenant: TenantEvents = store.tenant(tenant_id)
        begin = NewEvent(
            event_id=uuid4(), event_type="ExecutionStarted", payload=json.dumps(started("exec-blob")).encode()
        )
        payload = json.dumps(step("exec-blob", "s1", "upload", input="x" * 4096)).encode()
        new = NewEvent(event_id=uuid4(), event_type="StepStarted", payload=payload)
        tenant.append(instance_stream_id("deal-1"), [begin, new])
        stored = tenant.get_event(new.event_id)
        assert stored is not None and stored.blob_ref is not None and stored.payload is None  # in Blob storage
        run_views(store, tenant_id)
        assert trace_reads.unplaced_trace_events(store, tenant_id)[0] == 0
        trace = trace_reads.read_trace(store, tenant_id, "exec-blob")
        assert trace is not None and [s.row.name for s in trace.steps] == ["upload"]
        assert json.loads(trace.steps[0].input or "null") == "x" * 4096


def test_a_rebuild_makes_the_same_tables(timed: Timed) -> None:
    tenant_id = timed.tenant()
    deal = message(minute=0)
    record(timed, tenant_id, [deal, *two_step_execution(deal.event.event_id)])
    run_views(timed.store, tenant_id)
    before = contents(timed.store, tenant_id)
    runner = ViewRunner(timed.store, TRACE_VIEWS)
    for view in TRACE_VIEWS:
        assert runner.rebuild(tenant_id, view.name).caught_up
    assert contents(timed.store, tenant_id) == before


# --- the property: any delivery order, with repeats, makes the same tables -----------------------------

EXECUTION_IDS = ["e1", "e2", "e3"]
STEP_IDS = ["s1", "s2", "s3", "s4"]
INSTANCES = ["i1", "i2"]


@st.composite
def trace_events(draw: st.DrawFn) -> list[Planned]:
    """A set of trace and message events over a few executions, steps and messages: duplicates, ties in
    time, steps shared by executions, executions in two instances, ends without starts, bad payloads."""
    message_ids = draw(st.lists(st.uuids(), min_size=2, max_size=2, unique=True))
    planned = [
        message(minute=draw(st.integers(0, 180)), operation_id=m, trigger_name=draw(st.sampled_from(["a", "b"])))
        for m in message_ids
    ]
    for _ in range(draw(st.integers(1, 14))):
        execution = draw(st.sampled_from(EXECUTION_IDS))
        kind = draw(
            st.sampled_from(
                [
                    "ExecutionStarted",
                    "ExecutionCompleted",
                    "ExecutionFailed",
                    "StepStarted",
                    "StepCompleted",
                    "StepFailed",
                ]
            )
        )
        minute = draw(st.integers(0, 180))
        instance = draw(st.sampled_from(INSTANCES))
        workflow = draw(st.sampled_from([WORKFLOW, "other-workflow", None]))
        if kind == "ExecutionStarted":
            payload: Any = started(execution, draw(st.sampled_from([*message_ids, None])))
        elif kind == "ExecutionCompleted":
            payload = {"executionId": execution}
        elif kind == "ExecutionFailed":
            payload = {"executionId": execution, "error": error("x"), "deadLettered": draw(st.booleans())}
        else:
            attempt = draw(st.integers(1, 3))
            payload = step(execution, draw(st.sampled_from(STEP_IDS)), "n", attempt)
            payload["input" if kind == "StepStarted" else "output" if kind == "StepCompleted" else "error"] = attempt
        content_type = JSON
        if draw(st.integers(0, 9)) == 0:
            payload, content_type = b"{not json", "text/plain"
        planned.append(
            trace(kind, payload, minute=minute, instance=instance, workflow=workflow, content_type=content_type)
        )
    return planned


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(events=trace_events(), data=st.data())
def test_the_views_are_the_same_for_any_order_and_repeats_of_the_same_events(
    timed: Timed, events: list[Planned], data: st.DataObject
) -> None:
    reference = timed.tenant()
    record(timed, reference, events)
    run_views(timed.store, reference)

    shuffled = data.draw(st.permutations(events))
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=4))
    order = data.draw(st.permutations([*shuffled, *repeats]))  # a queue delivers some twice
    other = timed.tenant()
    batch = data.draw(st.sampled_from([1, 2, 3, 500]))
    for chunk in range(0, len(order), 3):  # the views run between deliveries, as the nudge does
        record(timed, other, order[chunk : chunk + 3])
        run_views(timed.store, other, batch=batch)
    assert contents(timed.store, other) == contents(timed.store, reference)
