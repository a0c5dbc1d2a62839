"""The messages view on a real PostgreSQL: every received message with its processing status, settled by
its executions (received, processing, succeeded, failed, dead-lettered) or, without a trace, by the
engine's outcomes (the Marain expense-claim walk); the same whatever the order events arrive in."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest

from eventstore import EventStore, Settings, TenantEvents
from eventstore.query import traces as trace_reads
from eventstore.views import MESSAGES
from eventstore_local.samples import expense_claim_walk
from tests.views.test_traces import (
    Timed,
    at,
    contents,
    error,
    message,
    record,
    run_views,
    started,
    timed_store,
    trace,
)


@pytest.fixture(scope="module")
def timed(settings: Settings) -> Iterator[Timed]:
    yield from timed_store(settings)


def status_of(timed: Timed, tenant_id: str, event_id: UUID) -> tuple[str, str | None, int]:
    row = trace_reads.read_message(timed.store, tenant_id, event_id)
    assert row is not None
    return row.status, row.latest_execution_id, row.attempts


def test_a_message_goes_from_received_through_processing_to_its_latest_executions_outcome(timed: Timed) -> None:
    tenant_id = timed.tenant()
    deal = message(minute=0)
    m = deal.event.event_id
    record(timed, tenant_id, [deal])
    assert status_of(timed, tenant_id, m) == ("received", None, 0)
    record(timed, tenant_id, [trace("ExecutionStarted", started("run-1", m), minute=1)])
    assert status_of(timed, tenant_id, m) == ("processing", "run-1", 1)
    record(timed, tenant_id, [trace("ExecutionFailed", {"executionId": "run-1", "error": error("503")}, minute=2)])
    assert status_of(timed, tenant_id, m) == ("failed", "run-1", 1)
    # The engine tries again, and gives up: the message is dead-lettered.
    record(timed, tenant_id, [trace("ExecutionStarted", started("run-2", m), minute=3)])
    assert status_of(timed, tenant_id, m) == ("processing", "run-2", 2)
    gave_up = {"executionId": "run-2", "error": error("503 again"), "deadLettered": True}
    record(timed, tenant_id, [trace("ExecutionFailed", gave_up, minute=4)])
    assert status_of(timed, tenant_id, m) == ("dead-lettered", "run-2", 2)
    # A replay of the stored message succeeds: the latest execution decides.
    record(
        timed,
        tenant_id,
        [
            trace("ExecutionStarted", started("run-3", m, replayOf="run-2"), minute=5),
            trace("ExecutionCompleted", {"executionId": "run-3"}, minute=6),
        ],
    )
    assert status_of(timed, tenant_id, m) == ("succeeded", "run-3", 3)
    row = trace_reads.read_message(timed.store, tenant_id, m)
    assert row is not None
    assert (row.message_type, row.event_type, row.workflow_id, row.received_at, row.updated_at) == (
        "deal.won",
        "TriggerReceived",
        "deal-won-workflow",  # from its executions: a trigger names no workflow
        at(0),
        at(6),
    )
    executions = trace_reads.executions_of_message(timed.store, tenant_id, m)
    assert executions is not None and [e.execution_id for e in executions] == ["run-1", "run-2", "run-3"]
    assert [e.replay_of for e in executions] == [None, None, "run-2"]


def test_an_execution_may_name_its_message_by_operation_id(timed: Timed) -> None:
    tenant_id = timed.tenant()
    deal = message(minute=0)
    by_operation = {"executionId": "run-op", "operationId": str(deal.event.event_id)}
    record(timed, tenant_id, [deal, trace("ExecutionStarted", by_operation, minute=1)])
    assert status_of(timed, tenant_id, deal.event.event_id) == ("processing", "run-op", 1)


def test_a_message_recorded_after_its_executions_finds_them(timed: Timed) -> None:
    tenant_id, reference = timed.tenant(), timed.tenant()
    deal = message(minute=0)
    m = deal.event.event_id
    runs = [
        trace("ExecutionStarted", started("run-1", m), minute=1),
        trace("ExecutionCompleted", {"executionId": "run-1"}, minute=2),
    ]
    record(timed, reference, [deal, *runs])
    run_views(timed.store, reference)
    record(timed, tenant_id, [*runs])
    run_views(timed.store, tenant_id)
    assert trace_reads.read_message(timed.store, tenant_id, m) is None
    assert trace_reads.executions_of_message(timed.store, tenant_id, m) is None
    record(timed, tenant_id, [deal])
    assert status_of(timed, tenant_id, m) == ("succeeded", "run-1", 1)
    assert contents(timed.store, tenant_id, [MESSAGES]) == contents(timed.store, reference, [MESSAGES])


def test_without_a_trace_the_engines_outcomes_settle_each_message(store: EventStore, walked: TenantEvents) -> None:
    messages, _ = trace_reads.list_messages(store, walked.tenant_id)
    walk = expense_claim_walk()
    assert [m.event_id for m in messages] == [s.event.event_id for s in walk if s.stream_id == "audit"]
    statuses = {(m.event_type, m.message_type, m.status) for m in messages}
    assert statuses == {
        ("InstanceCreationRequestReceived", "InstanceCreationRequestReceived", "succeeded"),  # InstanceCreated
        ("InstanceCreationRequestReceived", "InstanceCreationRequestReceived", "failed"),  # InstanceCreationFailed
        ("TriggerReceived", "Update", "succeeded"),
        ("TriggerReceived", "Submit", "succeeded"),
        ("TriggerReceived", "Reject", "succeeded"),
        ("TriggerReceived", "Approve", "succeeded"),
        ("TriggerReceived", "Pay", "succeeded"),
        ("TriggerReceived", "Run", "failed"),  # its TransitionFailed (the instance faulted)
    }
    assert all(m.attempts == 0 and m.latest_execution_id is None for m in messages)
    failed, _ = trace_reads.list_messages(store, walked.tenant_id, status="failed")
    assert {m.message_type for m in failed} == {"Run", "InstanceCreationRequestReceived"}


def test_messages_are_listed_by_status_type_workflow_and_time_in_pages(timed: Timed) -> None:
    tenant_id = timed.tenant()
    deals = [message(minute=i, trigger_name="deal.won") for i in range(5)]
    record(timed, tenant_id, deals)
    record(timed, tenant_id, [trace("ExecutionStarted", started("r0", deals[0].event.event_id), minute=10)])
    first, cursor = trace_reads.list_messages(timed.store, tenant_id, limit=2)
    assert [m.event_id for m in first] == [d.event.event_id for d in deals[:2]] and cursor is not None
    rest, end = trace_reads.list_messages(timed.store, tenant_id, after=cursor, limit=10)
    assert [m.event_id for m in rest] == [d.event.event_id for d in deals[2:]] and end is None
    processing, _ = trace_reads.list_messages(timed.store, tenant_id, status="processing")
    assert [m.event_id for m in processing] == [deals[0].event.event_id]
    assert trace_reads.list_messages(timed.store, tenant_id, event_type="InstanceCreationRequestReceived")[0] == []
    ranged, _ = trace_reads.list_messages(timed.store, tenant_id, received_from=at(1), received_to=at(3))
    assert [m.event_id for m in ranged] == [d.event.event_id for d in deals[1:3]]
    by_workflow, _ = trace_reads.list_messages(timed.store, tenant_id, workflow_id="deal-won-workflow")
    assert [m.event_id for m in by_workflow] == [deals[0].event.event_id]  # known from its execution
    assert trace_reads.read_message(timed.store, tenant_id, uuid4()) is None
