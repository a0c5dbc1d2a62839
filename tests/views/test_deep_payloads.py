"""A payload nested deeper than Python's parser goes is kept byte-exact (the store's promise); the views
read past it instead of stopping the tenant's instances or traces at it."""

from __future__ import annotations

from uuid import uuid4

from eventstore import EventStore, NewEvent, TenantEvents, instance_stream_id
from eventstore.views import INSTANCES, ViewRunner
from tests.helpers import settle


def test_a_payload_nested_past_the_parser_does_not_stop_the_instances_view(
    store: EventStore, tenant: TenantEvents
) -> None:
    deep = b'{"newState": "x", "context": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    created = b'{"newState": "waiting", "newStatus": "running", "workflowId": "wf"}'
    tenant.append(
        instance_stream_id("deep-1"),
        [
            NewEvent(event_id=uuid4(), event_type="InstanceCreated", payload=created, workflow_id="wf"),
            NewEvent(event_id=uuid4(), event_type="StateChanged", payload=deep, workflow_id="wf"),
        ],
    )
    settle(store, tenant)
    [run] = ViewRunner(store, [INSTANCES]).run_tenant(tenant.tenant_id)
    assert run.stopped is None and run.error is None, run
    [row] = store.views(tenant.tenant_id).fetch(
        {"instances": "view_instances"},
        "SELECT state_id, status, last_sequence, last_event_type FROM {instances} WHERE workflow_instance_id = %s",
        ["deep-1"],
    )
    assert tuple(row) == ("waiting", "running", 2, "StateChanged")
