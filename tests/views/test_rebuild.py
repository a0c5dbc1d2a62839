"""Rebuilding a view: built beside the live one from the start of the all-stream, then swapped in, so
readers never see it empty or half-built, and the live view stays current meanwhile."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg import sql

from eventstore import EventStore, TenantEvents, instance_stream_id, query
from eventstore.views import INSTANCES, ViewRunner
from eventstore.views.instances import list_instances
from tests.helpers import event, settle

COUNT = 300


def transition(state: str, status: str = "waiting") -> Any:
    return event({"newState": state, "newStatus": status, "workflowId": "wf"}, "TransitionCompleted")


def test_a_rebuild_replaces_a_damaged_view_with_the_fold(
    store: EventStore, walked: TenantEvents, owner_conn: psycopg.Connection[tuple[Any, ...]]
) -> None:
    runner = ViewRunner(store, [INSTANCES])
    runner.run_tenant(walked.tenant_id)
    owner_conn.execute(
        sql.SQL("UPDATE {} SET status = 'bogus'").format(sql.Identifier(walked.placement.schema_name, "view_instances"))
    )
    views = store.views(walked.tenant_id)
    assert {s.status for s in list_instances(views)} == {"bogus"}

    seen: list[tuple[int, int]] = []
    run = runner.rebuild(walked.tenant_id, "instances", progress=lambda applied, total: seen.append((applied, total)))
    assert run.caught_up and run.locked and run.stopped is None and run.error is None
    states = list_instances(views)
    assert states == [query.rebuild_state(walked, s.workflow_instance_id) for s in states] and len(states) == 3
    total = len(walked.read_all(limit=1000).events)
    assert seen and seen[-1] == (total, total)
    state = views.states()
    assert set(state) == {"instances"}  # the rebuild's own checkpoint became the view's
    assert state["instances"].events_applied == total
    shadow = owner_conn.execute(
        "SELECT to_regclass(%s)", (f"{walked.placement.schema_name}.view_instances__rebuild",)
    ).fetchone()
    assert shadow == (None,)
    # And the rebuilt view goes on being kept current.
    walked.append(instance_stream_id(states[0].workflow_instance_id), [transition("later")])
    settle(store, walked)
    assert runner.run_tenant(walked.tenant_id)[0].applied == 1


def test_readers_never_see_a_rebuild_half_done(store: EventStore, tenant: TenantEvents) -> None:
    for index in range(COUNT):
        tenant.append(instance_stream_id(f"i-{index:04}"), [transition("start")])
    settle(store, tenant)
    runner = ViewRunner(store, [INSTANCES], batch_events=25)  # many batches: a long rebuild
    runner.run_tenant(tenant.tenant_id)
    views = store.views(tenant.tenant_id)
    counts: list[int] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                counts.append(len(list_instances(views, limit=1000)))
            except Exception:  # a read that fails (a table gone mid-swap) is as bad as a short one
                counts.append(-1)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        # Appends go on during the rebuild; the live view and then the rebuilt one keep up with them.
        tenant.append(instance_stream_id("i-0000"), [transition("moved")])
        run = runner.rebuild(tenant.tenant_id, "instances")
        tenant.append(instance_stream_id("i-0001"), [transition("moved again")])
    finally:
        done.set()
        reader.join()
    assert run.caught_up and run.error is None
    assert counts and set(counts) == {COUNT}  # never empty, never partial
    settle(store, tenant)
    runner.run_tenant(tenant.tenant_id)
    states = {s.workflow_instance_id: s for s in list_instances(views, limit=1000)}
    assert states["i-0000"].state_id == "moved" and states["i-0001"].state_id == "moved again"
    assert states["i-0002"] == query.rebuild_state(tenant, "i-0002")
