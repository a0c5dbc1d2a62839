"""The failure counts view on a real PostgreSQL: per UTC hour, workflow and message type, executions
started, succeeded and failed, messages dead-lettered; days are the sum of their hours; an execution
whose start or message arrives late moves to its right bucket exactly."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from eventstore import Settings
from eventstore.query import traces as trace_reads
from eventstore.views import FAILURE_COUNTS
from eventstore.views.failure_counts import FailureBucket
from tests.views.test_traces import (
    WORKFLOW,
    Planned,
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


NINE = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
TEN = datetime(2026, 11, 10, 10, 0, tzinfo=UTC)
DAY = datetime(2026, 11, 10, 0, 0, tzinfo=UTC)


def day_of_runs() -> list[Planned]:
    """Two deal.won messages and an order.paid one; executions that succeed, fail, and fail for good
    (dead-lettered), across the 09:00 and 10:00 hours."""
    deal_1, deal_2, order = message(minute=0), message(minute=1), message(minute=2, trigger_name="order.paid")
    ids = [m.event.event_id for m in (deal_1, deal_2, order)]
    return [
        deal_1,
        deal_2,
        order,
        trace("ExecutionStarted", started("a", ids[0]), minute=5),
        trace("ExecutionCompleted", {"executionId": "a"}, minute=6),
        trace("ExecutionStarted", started("b", ids[1]), minute=10),
        trace("ExecutionFailed", {"executionId": "b", "error": error("503")}, minute=65),  # 10:05
        trace("ExecutionStarted", started("c", ids[1]), minute=70),
        trace("ExecutionFailed", {"executionId": "c", "error": error("no"), "deadLettered": True}, minute=75),
        trace("ExecutionStarted", started("d", ids[2]), minute=20, workflow="order-workflow"),
    ]


def test_executions_are_counted_per_hour_workflow_and_message_type(timed: Timed) -> None:
    tenant_id = timed.tenant()
    record(timed, tenant_id, day_of_runs())
    buckets, truncated = trace_reads.failure_counts(timed.store, tenant_id)
    assert not truncated
    assert buckets == [
        FailureBucket(NINE, WORKFLOW, "deal.won", started=2, succeeded=1, failed=0, dead_lettered=0),
        FailureBucket(NINE, "order-workflow", "order.paid", started=1, succeeded=0, failed=0, dead_lettered=0),
        FailureBucket(TEN, WORKFLOW, "deal.won", started=1, succeeded=0, failed=2, dead_lettered=1),
    ]
    days, _ = trace_reads.failure_counts(timed.store, tenant_id, granularity="day")
    assert days == [
        FailureBucket(DAY, WORKFLOW, "deal.won", started=3, succeeded=1, failed=2, dead_lettered=1),
        FailureBucket(DAY, "order-workflow", "order.paid", started=1, succeeded=0, failed=0, dead_lettered=0),
    ]
    # A bucket is returned when its start is in [from (truncated to the bucket), to).
    ten_only, _ = trace_reads.failure_counts(timed.store, tenant_id, counted_from=at(61), workflow_id=WORKFLOW)
    assert [b.start for b in ten_only] == [TEN]
    nine_only, _ = trace_reads.failure_counts(timed.store, tenant_id, counted_to=TEN)
    assert {b.start for b in nine_only} == {NINE}
    assert trace_reads.failure_counts(timed.store, tenant_id, counted_from=TEN, counted_to=TEN)[0] == []
    assert trace_reads.failure_counts(timed.store, tenant_id, granularity="day", counted_to=at(1))[0] == days


def test_late_starts_and_late_messages_move_an_execution_to_its_bucket(timed: Timed) -> None:
    tenant_id, reference = timed.tenant(), timed.tenant()
    events = day_of_runs()
    record(timed, reference, events)
    run_views(timed.store, reference)
    # Everything backwards: ends before starts, executions before their messages.
    for planned in reversed(events):
        record(timed, tenant_id, [planned])
        run_views(timed.store, tenant_id)
    assert contents(timed.store, tenant_id, [FAILURE_COUNTS]) == contents(timed.store, reference, [FAILURE_COUNTS])
    assert trace_reads.failure_counts(timed.store, tenant_id) == trace_reads.failure_counts(timed.store, reference)


def test_an_execution_counts_under_an_unknown_type_until_its_message_is_recorded(timed: Timed) -> None:
    tenant_id = timed.tenant()
    deal = message(minute=0)
    record(timed, tenant_id, [trace("ExecutionStarted", started("a", deal.event.event_id), minute=5)])
    assert trace_reads.failure_counts(timed.store, tenant_id)[0] == [
        FailureBucket(NINE, WORKFLOW, None, started=1, succeeded=0, failed=0, dead_lettered=0)
    ]
    record(timed, tenant_id, [deal])
    assert trace_reads.failure_counts(timed.store, tenant_id)[0] == [
        FailureBucket(NINE, WORKFLOW, "deal.won", started=1, succeeded=0, failed=0, dead_lettered=0)
    ]
