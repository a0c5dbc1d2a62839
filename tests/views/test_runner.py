"""The view runner and the instances view on a real PostgreSQL: exactly once whatever the batches, the
same answer as folding each stream, a stop at an event it cannot apply (never a skip), one runner per
view, and the health that says all of it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from eventstore import EventStore, TenantEvents, instance_stream_id, query
from eventstore.models import InstanceState, RecordedEvent
from eventstore.store import ViewWriter
from eventstore.views import INSTANCES, View, ViewRunner
from eventstore.views.health import views_health
from eventstore.views.instances import list_instances
from eventstore_local.samples import CLAIM_INSTANCE_ID, FAILED_INSTANCE_ID, FAULTED_INSTANCE_ID, expense_claim_walk
from tests.helpers import event, settle

JSON = "application/json"
INSTANCE_IDS = sorted([CLAIM_INSTANCE_ID, FAULTED_INSTANCE_ID, FAILED_INSTANCE_ID])


def rows(store: EventStore, tenant: TenantEvents) -> list[InstanceState]:
    return list(list_instances(store.views(tenant.tenant_id), limit=1000))


@pytest.mark.parametrize("batch", [1, 2, 3, 500])
def test_the_instances_view_is_the_fold_of_each_stream_whatever_the_batches(
    store: EventStore, walked: TenantEvents, batch: int
) -> None:
    [run] = ViewRunner(store, [INSTANCES], batch_events=batch).run_tenant(walked.tenant_id)
    assert run.locked and run.caught_up and run.stopped is None
    assert run.applied == len(expense_claim_walk())
    assert rows(store, walked) == [query.rebuild_state(walked, i) for i in INSTANCE_IDS]


def test_each_event_is_applied_once(store: EventStore, walked: TenantEvents) -> None:
    runner = ViewRunner(store, [INSTANCES])
    first = runner.run_tenant(walked.tenant_id)[0]
    again = runner.run_tenant(walked.tenant_id)[0]
    assert (first.applied, again.applied) == (len(expense_claim_walk()), 0)
    state = store.views(walked.tenant_id).states()["instances"]
    assert state.events_applied == len(expense_claim_walk())
    assert state.checkpoint == walked.read_all(limit=1000).next_checkpoint
    # New events are applied from the checkpoint on, on top of what is there.
    walked.append(
        instance_stream_id(CLAIM_INSTANCE_ID), [event({"newState": "archived"}, "StateChanged", content_type=JSON)]
    )
    settle(store, walked)
    assert runner.run_tenant(walked.tenant_id)[0].applied == 1
    assert rows(store, walked) == [query.rebuild_state(walked, i) for i in INSTANCE_IDS]
    assert rows(store, walked)[INSTANCE_IDS.index(CLAIM_INSTANCE_ID)].state_id == "archived"


def refusing(bad: RecordedEvent) -> View:
    """The instances view, but unable to apply `bad` (a handler bug, say)."""

    def apply(writer: ViewWriter, events: Sequence[RecordedEvent]) -> None:
        if any(e.event_id == bad.event_id for e in events):
            raise ValueError("cannot place this event")
        INSTANCES.apply(writer, events)

    return View(INSTANCES.name, INSTANCES.tables, apply, INSTANCES.description)


def test_a_view_stops_at_an_event_it_cannot_apply_and_never_skips_it(store: EventStore, walked: TenantEvents) -> None:
    events = walked.read_all(limit=1000).events
    bad = events[len(events) // 2]
    before = events[: len(events) // 2]

    [run] = ViewRunner(store, [refusing(bad)], batch_events=500).run_tenant(walked.tenant_id)
    assert run.stopped is not None and "cannot place this event" in run.stopped and not run.caught_up
    assert run.applied == len(before)  # everything before it, nothing after it
    state = store.views(walked.tenant_id).states()["instances"]
    assert state.stopped_event_id == bad.event_id and state.stopped_reason and state.stopped_at
    assert (state.checkpoint.transaction_id, state.checkpoint.global_position) == (
        before[-1].transaction_id,
        before[-1].global_position,
    )
    health = views_health(store, walked.tenant_id, [INSTANCES])
    [view] = health.views
    assert view.stopped is not None and view.stopped.event_id == str(bad.event_id)
    assert view.lag_events == len(events) - len(before)

    # Every run tries it again, and stops there again: the events after it are never applied past it.
    [again] = ViewRunner(store, [refusing(bad)]).run_tenant(walked.tenant_id)
    assert again.applied == 0 and again.stopped is not None
    # Fixed (the handler can apply it now): the view goes on from that very event, and the stop is cleared.
    [fixed] = ViewRunner(store, [INSTANCES]).run_tenant(walked.tenant_id)
    assert fixed.applied == len(events) - len(before) and fixed.caught_up
    assert store.views(walked.tenant_id).states()["instances"].stopped_event_id is None
    assert rows(store, walked) == [query.rebuild_state(walked, i) for i in INSTANCE_IDS]


def test_one_runner_per_tenant_and_view(store: EventStore, walked: TenantEvents) -> None:
    with store.views(walked.tenant_id).session("instances") as held:
        assert held is not None
        [run] = ViewRunner(store, [INSTANCES]).run_tenant(walked.tenant_id)
        assert not run.locked and run.applied == 0
        with store.views(walked.tenant_id).session("instances") as second:
            assert second is None
    assert ViewRunner(store, [INSTANCES]).run_tenant(walked.tenant_id)[0].applied == len(expense_claim_walk())


def test_health_shows_the_lag_until_the_view_catches_up(store: EventStore, walked: TenantEvents) -> None:
    [before] = views_health(store, walked.tenant_id, [INSTANCES]).views
    assert before.lag_events == len(expense_claim_walk()) and before.lag_seconds is not None
    assert before.events_applied == 0 and before.stopped is None
    ViewRunner(store, [INSTANCES]).run_tenant(walked.tenant_id)
    [after] = views_health(store, walked.tenant_id, [INSTANCES]).views
    assert (after.lag_events, after.lag_seconds, after.events_applied) == (0, None, len(expense_claim_walk()))


def test_a_read_brings_the_view_up_to_date_first(store: EventStore, walked: TenantEvents) -> None:
    # Nothing has run the view yet: the read itself catches it up (read-your-writes).
    faulted, _ = query.list_instances(store, walked.tenant_id, "faulted")
    assert sorted(s.workflow_instance_id for s in faulted) == sorted([FAULTED_INSTANCE_ID, FAILED_INSTANCE_ID])
    walked.append(
        instance_stream_id(CLAIM_INSTANCE_ID), [event({"error": "boom"}, "TransitionFailed", content_type=JSON)]
    )
    faulted, _ = query.list_instances(store, walked.tenant_id, "faulted")
    assert CLAIM_INSTANCE_ID in {s.workflow_instance_id for s in faulted}
