"""The views over HTTP: each tenant's view health, and the instances listing served from its view."""

from __future__ import annotations

from eventstore import EventStore
from eventstore_local.samples import expense_claim_walk
from tests.helpers import random_tenant_id
from tests.http.client import Api, assert_problem


def record_walk(store: EventStore, tenant_id: str) -> int:
    tenant = store.tenant(tenant_id)
    walk = expense_claim_walk()
    for step in walk:
        tenant.append(step.stream_id, [step.event])
    return len(walk)


def test_view_health_says_how_far_each_view_has_got(api: Api, tenant_id: str, store: EventStore) -> None:
    count = record_walk(store, tenant_id)
    health = api.get(f"tenants/{tenant_id}/views")
    assert health.status == 200, health.body
    body = health.json()
    assert body["tenantId"] == tenant_id
    instances = next(v for v in body["views"] if v["name"] == "instances")
    # Appended straight to the store (no nudge), so the view may not have seen them yet.
    assert instances["lagEvents"] + instances["eventsApplied"] == count
    assert instances["stopped"] is None

    # A listing brings the view up to date before it answers; health then shows no lag.
    assert api.get(f"tenants/{tenant_id}/instances", status="faulted").status == 200
    instances = next(v for v in api.get(f"tenants/{tenant_id}/views").json()["views"] if v["name"] == "instances")
    assert (instances["lagEvents"], instances["lagSeconds"], instances["eventsApplied"]) == (0, None, count)


def test_view_health_of_an_unknown_tenant_is_404(api: Api) -> None:
    assert_problem(api.get(f"tenants/{random_tenant_id()}/views"), 404)
    assert_problem(api.get("tenants/NOT-A-TENANT/views"), 400)


def test_instances_are_listed_by_workflow_and_time_of_last_event(api: Api, tenant_id: str, store: EventStore) -> None:
    record_walk(store, tenant_id)
    everything = api.get(f"tenants/{tenant_id}/instances").json()["instances"]
    assert len(everything) == 3
    workflow = everything[0]["workflowId"]
    of_workflow = api.get(f"tenants/{tenant_id}/instances", workflowId=workflow).json()["instances"]
    assert of_workflow == [i for i in everything if i["workflowId"] == workflow]
    assert api.get(f"tenants/{tenant_id}/instances", workflowId="no-such-workflow").json()["instances"] == []
    future, past = "2999-01-01T00:00:00Z", "2000-01-01T00:00:00+00:00"
    assert api.get(f"tenants/{tenant_id}/instances", updatedFrom=future).json()["instances"] == []
    assert (
        api.get(f"tenants/{tenant_id}/instances", updatedFrom=past, updatedTo=future).json()["instances"] == everything
    )
    assert_problem(api.get(f"tenants/{tenant_id}/instances", updatedFrom="yesterday"), 400, field="updatedFrom")
    # A continuation is bound to its filters.
    token = api.get(f"tenants/{tenant_id}/instances", workflowId=workflow, limit="1").json()["continuation"]
    assert token is not None
    assert api.get(f"tenants/{tenant_id}/instances", workflowId=workflow, continuation=token).status == 200
    assert_problem(api.get(f"tenants/{tenant_id}/instances", continuation=token), 400)
