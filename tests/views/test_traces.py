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
from tests.helpers import random_tenant_id, settle

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


# --- replays: an execution's replay id, and the steps a replay skipped ------------------------------------

REPLAY = UUID("0b7f2c1e-5d4a-4e8b-9c6f-1a2b3c4d5e6f")
CRM_KEY, MAIL_KEY = "msg-1/create-crm-record", "msg-1/send-email"


def skipped(execution: str, step_id: str, name: str, key: str, *, execution_for: str, step_for: str) -> dict[str, Any]:
    """A StepSkipped: `execution` did not run `step_id` again; `step_for` of `execution_for` had succeeded."""
    return {
        "executionId": execution,
        "stepId": step_id,
        "name": name,
        "attempt": 1,
        "idempotencyKey": key,
        "skippedFor": {"executionId": execution_for, "stepId": step_for},
    }


def replayed_message(message_id: UUID, instance: str = "deal-1") -> list[Planned]:
    """The seed's case: exec-1 creates the CRM record, then the email fails for good; the replay exec-2
    skips the CRM step (reusing exec-1's) and sends the email. In another instance than deal-1, the ids
    are prefixed with the instance (ids are the tenant's)."""
    p = "" if instance == "deal-1" else f"{instance}/"
    e1, e2, crm1, crm2, mail1, mail2 = (p + n for n in ("exec-1", "exec-2", "crm-1", "crm-2", "mail-1", "mail-2"))

    def at_(kind: str, payload: dict[str, Any], minute: float) -> Planned:
        return trace(kind, payload, minute=minute, instance=instance)

    return [
        at_("ExecutionStarted", started(e1, message_id), 1),
        at_("StepStarted", step(e1, crm1, "create-crm-record", idempotencyKey=CRM_KEY, input={"n": 1}), 1.1),
        at_("StepCompleted",
            step(e1, crm1, "create-crm-record", idempotencyKey=CRM_KEY, output={"recordId": "crm-7"}), 1.2),
        at_("StepStarted", step(e1, mail1, "send-email", idempotencyKey=MAIL_KEY, input={"to": "a"}), 1.3),
        at_("StepFailed",
            step(e1, mail1, "send-email", idempotencyKey=MAIL_KEY, error=error("mail answered 503", 503)), 1.4),
        at_("ExecutionFailed", {"executionId": e1, "error": error("send-email failed")}, 1.5),
        at_("ExecutionStarted", started(e2, message_id, replayId=str(REPLAY)), 10),
        at_("StepSkipped", skipped(e2, crm2, "create-crm-record", CRM_KEY, execution_for=e1, step_for=crm1), 10.1),
        at_("StepStarted", step(e2, mail2, "send-email", idempotencyKey=MAIL_KEY, input={"to": "a"}), 10.2),
        at_("StepCompleted", step(e2, mail2, "send-email", idempotencyKey=MAIL_KEY, output={"sent": True}), 10.3),
        at_("ExecutionCompleted", {"executionId": e2}, 10.4),
    ]  # fmt: skip


def test_a_replay_keeps_its_replay_id_and_its_skipped_step_the_step_it_reused(timed: Timed) -> None:
    tenant_id = timed.tenant()
    deal = message(minute=0)
    record(timed, tenant_id, [deal, *replayed_message(deal.event.event_id)])

    first, replay = (trace_reads.read_trace(timed.store, tenant_id, e) for e in ("exec-1", "exec-2"))
    assert first is not None and replay is not None
    assert (first.execution.status, first.execution.replay_id) == ("failed", None)
    assert (replay.execution.status, replay.execution.replay_id) == ("succeeded", REPLAY)
    crm, mail = replay.steps
    assert (crm.row.name, crm.row.status, crm.row.attempts, crm.row.error) == ("create-crm-record", "skipped", 1, None)
    assert (crm.row.skipped_for_execution_id, crm.row.skipped_for_step_id) == ("exec-1", "crm-1")
    assert (crm.row.started_at, crm.row.completed_at, crm.row.idempotency_key) == (None, at(10.1), CRM_KEY)
    assert [(h["attempt"], h["status"]) for h in json.loads(crm.row.attempt_history)] == [(1, "skipped")]
    # The output the skip reused is the step's it names; the view itself keeps none for it.
    assert crm.row.output is None and json.loads(crm.output or "") == {"recordId": "crm-7"}
    assert crm.input is None
    assert (mail.row.status, mail.row.skipped_for_step_id) == ("succeeded", None)
    # The step that did the work comes first for its key; the skip after it.
    assert [s.row.step_id for s in trace_reads.steps_by_key(timed.store, tenant_id, CRM_KEY)] == ["crm-1", "crm-2"]
    rows, _ = trace_reads.list_executions(timed.store, tenant_id, replay_id=REPLAY)
    assert [r.execution_id for r in rows] == ["exec-2"]
    # The replay that succeeded settles the message.
    settled = trace_reads.read_message(timed.store, tenant_id, deal.event.event_id)
    assert settled is not None
    assert (settled.status, settled.latest_execution_id, settled.attempts) == ("succeeded", "exec-2", 2)
    assert trace_reads.unplaced_trace_events(timed.store, tenant_id) == (0, [])


def test_a_skip_recorded_before_the_step_it_reused_still_comes_after_it_for_its_key(timed: Timed) -> None:
    """`steps?idempotencyKey=` answers the step that succeeded first, even when a skip of it was stamped
    earlier (clocks differ between engines): a replay must reuse the original, never a skip."""
    tenant_id = timed.tenant()
    record(
        timed,
        tenant_id,
        [
            trace("ExecutionStarted", started("exec-r", replayId=str(REPLAY)), minute=0),
            trace("StepSkipped", skipped("exec-r", "a-skip", "crm", CRM_KEY, execution_for="exec-o", step_for="z-done"),
                  minute=0.5),
            trace("ExecutionStarted", started("exec-o"), minute=1),
            trace("StepStarted", step("exec-o", "z-done", "crm", idempotencyKey=CRM_KEY, input=1), minute=2),
            trace("StepCompleted", step("exec-o", "z-done", "crm", idempotencyKey=CRM_KEY, output={"id": 9}), minute=3),
        ],
    )  # fmt: skip
    found = trace_reads.steps_by_key(timed.store, tenant_id, CRM_KEY)
    assert [(s.row.step_id, s.row.status) for s in found] == [("z-done", "succeeded"), ("a-skip", "skipped")]
    assert [json.loads(s.output or "") for s in found] == [{"id": 9}, {"id": 9}]


def test_a_skip_names_its_step_and_a_skip_of_a_skip_is_followed_to_the_step_that_did_the_work(timed: Timed) -> None:
    tenant_id = timed.tenant()
    record(
        timed,
        tenant_id,
        [
            trace("ExecutionStarted", started("e-1"), minute=0),
            trace("StepCompleted", step("e-1", "done", "crm", idempotencyKey=CRM_KEY, output={"id": 1}), minute=1),
            trace("ExecutionStarted", started("e-2", replayId=str(REPLAY)), minute=2),
            trace("StepSkipped", skipped("e-2", "skip-2", "crm", CRM_KEY, execution_for="e-1", step_for="done"),
                  minute=3),
            trace("ExecutionStarted", started("e-3", replayId=str(uuid4())), minute=4),
            # An engine that named the skip instead of the step that succeeded: followed to that step.
            trace("StepSkipped", skipped("e-3", "skip-3", "crm", CRM_KEY, execution_for="e-2", step_for="skip-2"),
                  minute=5),
            # Named steps that are not there, or not in the execution named: kept, with no output.
            trace("StepSkipped", skipped("e-3", "skip-4", "mail", MAIL_KEY, execution_for="e-1", step_for="never"),
                  minute=6),
            trace("StepSkipped", skipped("e-3", "skip-5", "mail", MAIL_KEY, execution_for="e-2", step_for="done"),
                  minute=7),
            # Two skips naming each other: no output, and no endless loop.
            trace("StepSkipped", skipped("e-3", "loop-a", "x", "k", execution_for="e-3", step_for="loop-b"), minute=8),
            trace("StepSkipped", skipped("e-3", "loop-b", "x", "k", execution_for="e-3", step_for="loop-a"), minute=9),
        ],
    )  # fmt: skip
    found = trace_reads.read_trace(timed.store, tenant_id, "e-3")
    assert found is not None
    outputs = {s.row.step_id: (s.row.status, s.row.skipped_for_step_id, s.output) for s in found.steps}
    assert outputs == {
        "skip-3": ("skipped", "skip-2", '{"id":1}'),
        "skip-4": ("skipped", "never", None),
        "skip-5": ("skipped", "done", None),
        "loop-a": ("skipped", "loop-b", None),
        "loop-b": ("skipped", "loop-a", None),
    }


def test_a_skip_merges_with_other_reports_of_its_step_the_same_whatever_the_order(timed: Timed) -> None:
    """A completion outranks a skip, a skip outranks a failure; a skip reported twice (under two event ids)
    is one skip, and the first by (recordedAt, eventId) names the step reused. The replay id is that of
    the first start."""
    events = [
        trace("ExecutionStarted", started("e-1", replayId=str(REPLAY)), minute=0),
        trace("ExecutionStarted", started("e-1", replayId=str(uuid4())), minute=0.5),
        trace("StepSkipped", skipped("e-1", "s-skip", "crm", CRM_KEY, execution_for="e-0", step_for="a"), minute=1),
        trace("StepSkipped", skipped("e-1", "s-skip", "crm", CRM_KEY, execution_for="e-0", step_for="b"), minute=2),
        trace("StepFailed", step("e-1", "s-skip", "crm", error=error("late")), minute=3),
        trace("StepSkipped", skipped("e-1", "s-done", "mail", MAIL_KEY, execution_for="e-0", step_for="a"), minute=1),
        trace("StepCompleted", step("e-1", "s-done", "mail", output={"sent": True}), minute=4),
    ]
    reference = timed.tenant()
    record(timed, reference, events)
    run_views(timed.store, reference)
    found = trace_reads.read_trace(timed.store, reference, "e-1")
    assert found is not None
    rows = {s.row.step_id: s.row for s in found.steps}
    assert (rows["s-skip"].status, rows["s-skip"].skipped_for_step_id, rows["s-skip"].error) == ("skipped", "a", None)
    assert (rows["s-done"].status, rows["s-done"].skipped_for_step_id) == ("succeeded", None)
    assert found.execution.replay_id == REPLAY

    for order in (list(reversed(events)), [events[i] for i in (4, 6, 1, 3, 0, 2, 5)]):
        other = timed.tenant()
        record(timed, other, [*order, order[0], order[-1]])  # two of them delivered twice
        run_views(timed.store, other, batch=2)
        assert contents(timed.store, other) == contents(timed.store, reference)


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
    ("a replay id that is no UUID", "ExecutionStarted", b'{"executionId": "e", "replayId": "replay-1"}', JSON,
     "bad-1", "invalid-member"),
    ("a replay id that is a number", "ExecutionStarted", b'{"executionId": "e", "replayId": 7}', JSON, "bad-1",
     "invalid-member"),
    ("a skip without its key", "StepSkipped",
     b'{"executionId": "e", "stepId": "s", "name": "n", "skippedFor": {"executionId": "e0", "stepId": "s0"}}', JSON,
     "bad-1", "invalid-member"),
    ("a skip without skippedFor", "StepSkipped",
     b'{"executionId": "e", "stepId": "s", "name": "n", "idempotencyKey": "k"}', JSON, "bad-1", "invalid-member"),
    ("a skip whose skippedFor is text", "StepSkipped",
     b'{"executionId": "e", "stepId": "s", "name": "n", "idempotencyKey": "k", "skippedFor": "s0"}', JSON, "bad-1",
     "invalid-member"),
    ("a skip whose skippedFor names no step", "StepSkipped",
     b'{"executionId": "e", "stepId": "s", "name": "n", "idempotencyKey": "k", "skippedFor": {"executionId": "e0"}}',
     JSON, "bad-1", "invalid-member"),
    ("a skip that is an array", "StepSkipped", b"[]", JSON, "bad-1", "not-an-object"),
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
    settle(timed.store, timed.store.tenant(tenant_id))

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


def _replay_indexes(store: EventStore, tenant_id: str) -> list[str]:
    views = store.views(tenant_id)
    statement = "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = 'view_trace_executions'"
    return [d for (d,) in views.fetch({}, statement, [views.placement.schema_name]) if "(replay_id" in d]


def test_a_rebuild_makes_the_same_tables(timed: Timed) -> None:
    tenant_id = timed.tenant()
    deal, other = message(minute=0), message(minute=0, instance="deal-2")
    events = [deal, *two_step_execution(deal.event.event_id), other, *replayed_message(other.event.event_id, "deal-2")]
    record(timed, tenant_id, events)
    run_views(timed.store, tenant_id)
    before = contents(timed.store, tenant_id)
    assert any("'skipped'" in row and "'deal-2/crm-1'" in row for row in before["executions.steps"])
    assert any(repr(REPLAY) in row for row in before["executions.executions"])
    assert _replay_indexes(timed.store, tenant_id)
    runner = ViewRunner(timed.store, TRACE_VIEWS)
    for _ in range(2):  # the second copies the copy the first swapped in (its columns, its indexes)
        for view in TRACE_VIEWS:
            assert runner.rebuild(tenant_id, view.name).caught_up
        assert contents(timed.store, tenant_id) == before
        assert _replay_indexes(timed.store, tenant_id)
    found = trace_reads.read_trace(timed.store, tenant_id, "deal-2/exec-2")
    assert found is not None and found.execution.replay_id == REPLAY
    assert [(s.row.status, s.output) for s in found.steps] == [
        ("skipped", '{"recordId":"crm-7"}'),
        ("succeeded", '{"sent":true}'),
    ]


# --- the property: any delivery order, with repeats, makes the same tables -----------------------------

EXECUTION_IDS = ["e1", "e2", "e3"]
OTHER_REPLAY = UUID("0f0e0d0c-0b0a-4908-8706-050403020100")
INSTANCES = ["i1", "i2"]


@st.composite
def trace_events(draw: st.DrawFn) -> list[Planned]:
    """A set of trace and message events over a few executions, steps and messages: duplicates, ties in
    time, steps shared by executions, executions in two instances, ends without starts, bad payloads,
    replays (a replay id on a start) and skips (of steps run, skipped or failed elsewhere, or of themselves),
    and reports that contradict one another (the same start, step or skip again with another detail).
    Each execution has an instance and steps of its own, which most of its events name, so that most events
    are placed and the rules that choose between them have something to choose from."""
    message_ids = draw(st.lists(st.uuids(), min_size=2, max_size=2, unique=True))
    planned = [
        message(minute=draw(st.integers(0, 180)), operation_id=m, trigger_name=draw(st.sampled_from(["a", "b"])))
        for m in message_ids
    ]
    home = {e: draw(st.sampled_from(INSTANCES)) for e in EXECUTION_IDS}

    def instance_of(execution: str) -> str:
        return home[execution] if draw(st.integers(0, 3)) else draw(st.sampled_from(INSTANCES))

    def step_of(execution: str) -> str:
        return draw(st.sampled_from([f"{execution}-s1", f"{execution}-s2", "shared"]))

    drafts: list[tuple[str, dict[str, Any], str, str | None]] = []
    for execution in EXECUTION_IDS:
        if draw(st.integers(0, 3)):  # most executions are started
            start = started(execution, draw(st.sampled_from([*message_ids, None])))
            drafts.append(("ExecutionStarted", start, home[execution], WORKFLOW))
            planned.append(trace("ExecutionStarted", start, minute=draw(st.integers(0, 180)), instance=home[execution]))
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
                    "StepSkipped",
                ]
            )
        )
        minute = draw(st.integers(0, 180))
        instance = instance_of(execution)
        workflow = draw(st.sampled_from([WORKFLOW, "other-workflow", None]))
        if kind == "ExecutionStarted":
            payload: Any = started(execution, draw(st.sampled_from([*message_ids, None])))
            replay = draw(st.sampled_from([None, None, str(REPLAY), str(OTHER_REPLAY)]))
            if replay is not None:
                payload["replayId"] = replay
        elif kind == "StepSkipped":
            reused = draw(st.sampled_from(EXECUTION_IDS))
            key = draw(st.sampled_from([CRM_KEY, MAIL_KEY]))
            payload = skipped(execution, step_of(execution), "n", key, execution_for=reused, step_for=step_of(reused))
            payload["attempt"] = draw(st.integers(1, 3))
        elif kind == "ExecutionCompleted":
            payload = {"executionId": execution}
        elif kind == "ExecutionFailed":
            payload = {"executionId": execution, "error": error("x"), "deadLettered": draw(st.booleans())}
        else:
            attempt = draw(st.integers(1, 3))
            payload = step(execution, step_of(execution), "n", attempt)
            payload["input" if kind == "StepStarted" else "output" if kind == "StepCompleted" else "error"] = attempt
        content_type = JSON
        if draw(st.integers(0, 9)) == 0:
            payload, content_type = b"{not json", "text/plain"
        else:
            drafts.append((kind, payload, instance, workflow))
        planned.append(
            trace(kind, payload, minute=minute, instance=instance, workflow=workflow, content_type=content_type)
        )
    # Contradictions: which report counts must be decided by the events, never by which arrived first.
    for _ in range(draw(st.integers(0, 4)) if drafts else 0):
        kind, payload, instance, workflow = draw(st.sampled_from(drafts))
        member, value = {
            "ExecutionStarted": ("replayId", draw(st.sampled_from([None, str(REPLAY), str(OTHER_REPLAY)]))),
            "StepSkipped": (
                "skippedFor",
                {"executionId": draw(st.sampled_from(EXECUTION_IDS)), "stepId": step_of(payload["executionId"])},
            ),
            "StepStarted": ("input", draw(st.integers(10, 12))),
            "StepCompleted": ("output", draw(st.integers(10, 12))),
        }.get(kind, ("error", error(draw(st.sampled_from(["y", "z"])))))
        variant = {**payload, member: value}
        planned.append(trace(kind, variant, minute=draw(st.integers(0, 180)), instance=instance, workflow=workflow))
    return planned


@st.composite
def contradicting_reports(draw: st.DrawFn) -> list[Planned]:
    """One execution reported several times over, each report saying something else: starts with other
    replay ids and messages, and steps completed, skipped (naming other steps), failed and started over
    again, at a handful of times (ties included). Whichever report counts, it must not be the first to
    arrive."""
    message_id = draw(st.uuids())
    planned = [message(minute=0, operation_id=message_id, instance="i1")]
    for _ in range(draw(st.integers(1, 3))):
        start = started("c1", draw(st.sampled_from([message_id, None])))
        replay = draw(st.sampled_from([None, REPLAY, OTHER_REPLAY]))
        if replay is not None:
            start["replayId"] = str(replay)
        planned.append(trace("ExecutionStarted", start, minute=draw(st.integers(0, 3)), instance="i1"))
    for step_id in ("c1-a", "c1-b"):
        for _ in range(draw(st.integers(2, 5))):
            kind = draw(st.sampled_from(["StepSkipped"] * 3 + ["StepCompleted", "StepFailed", "StepStarted"]))
            attempt = draw(st.integers(1, 2))
            if kind == "StepSkipped":
                reused = draw(st.sampled_from(["e1-s1", "e1-s2", "e2-s1"]))
                payload = skipped("c1", step_id, "n", CRM_KEY, execution_for=reused[:2], step_for=reused)
                payload["attempt"] = attempt
            else:
                detail = draw(st.integers(0, 2))
                member = {"StepCompleted": "output", "StepStarted": "input"}.get(kind, "error")
                payload = step(
                    "c1", step_id, "n", attempt, **{member: detail if member != "error" else error(str(detail))}
                )
            planned.append(trace(kind, payload, minute=draw(st.integers(0, 3)), instance="i1"))
    if draw(st.booleans()):
        end = draw(st.sampled_from(["ExecutionCompleted", "ExecutionFailed"]))
        planned.append(
            trace(end, {"executionId": "c1", "error": error("e")}, minute=draw(st.integers(0, 3)), instance="i1")
        )
    return planned


def _same_for_any_order(timed: Timed, events: list[Planned], data: st.DataObject) -> None:
    """The views of `events` appended in their order, in one run, are those of the same events appended in
    another order, some of them twice, with the views run between deliveries in batches of any size."""
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


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(events=trace_events(), data=st.data())
def test_the_views_are_the_same_for_any_order_and_repeats_of_the_same_events(
    timed: Timed, events: list[Planned], data: st.DataObject
) -> None:
    _same_for_any_order(timed, events, data)


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(events=contradicting_reports(), data=st.data())
def test_reports_that_contradict_one_another_make_the_same_views_in_any_order(
    timed: Timed, events: list[Planned], data: st.DataObject
) -> None:
    _same_for_any_order(timed, events, data)
