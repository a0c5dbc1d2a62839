"""The views over HTTP: each tenant's view health, and the instances listing served from its view."""

from __future__ import annotations

from eventstore import EventStore, instance_stream_id
from eventstore_local.samples import expense_claim_walk
from tests.helpers import event, random_tenant_id, settle
from tests.http.client import Api, assert_problem, envelope

JSON = "application/json"


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


def test_reads_of_a_view_wait_for_the_position_an_append_answered(api: Api, tenant_id: str) -> None:
    body = envelope(tenant_id, properties={"WorkflowInstanceId": "ryw-1", "WorkflowId": "ryw"})
    answer = api.post(f"tenants/{tenant_id}/messages", body)
    assert answer.status == 202, answer.body
    event_id, position = answer.json()["eventId"], str(answer.json()["globalPosition"])
    message = api.get(f"tenants/{tenant_id}/messages/{event_id}", minPosition=position)
    assert message.status == 200 and message.json()["status"] == "received", message.body
    reads = {
        "instances": ({}, 200),
        "messages": ({}, 200),
        f"messages/{event_id}/executions": ({}, 200),
        "executions": ({}, 200),
        "executions/no-such-execution": ({}, 404),
        "steps": ({"idempotencyKey": "k"}, 200),
        "metrics/failures": ({}, 200),
        "traces/unplaced": ({}, 200),
    }
    for route, (params, status) in reads.items():
        assert api.get(f"tenants/{tenant_id}/{route}", minPosition=position, **params).status == status, route
        for wrong in ("-1", "1.5", "x", str(2**63)):
            given = {**params, "minPosition": wrong}
            assert_problem(api.get(f"tenants/{tenant_id}/{route}", **given), 400, field="minPosition")


def test_a_view_that_cannot_reach_the_position_answers_503_view_behind(
    api: Api, tenant_id: str, store: EventStore
) -> None:
    tenant = store.tenant(tenant_id)

    def transition(instance: str) -> int:
        outcome = event({"newState": "s", "newStatus": "waiting"}, "TransitionCompleted", content_type=JSON)
        return tenant.append(instance_stream_id(instance), [outcome]).global_positions[0]

    before = transition("before")
    # A state id PostgreSQL text cannot hold (NUL): the instances view cannot apply it and stops there, for good.
    poison = event(b'{"newState": "s\\u0000", "newStatus": "waiting"}', "TransitionCompleted", content_type=JSON)
    tenant.append(instance_stream_id("poison"), [poison])
    after = transition("after")
    settle(store, tenant)

    answer = api.get(f"tenants/{tenant_id}/instances", minPosition=str(after))
    problem = assert_problem(answer, 503, view="instances", minPosition=after, stopped=True)
    assert answer.headers["retry-after"].isdigit() and "stopped" in problem["detail"]
    # What the view did apply is served; without a position, the view as it is (health says it stopped).
    listed = api.get(f"tenants/{tenant_id}/instances", minPosition=str(before))
    assert [i["workflowInstanceId"] for i in listed.json()["instances"]] == ["before"]
    assert api.get(f"tenants/{tenant_id}/instances").json() == listed.json()
    health = api.get(f"tenants/{tenant_id}/views").json()
    assert next(v for v in health["views"] if v["name"] == "instances")["stopped"] is not None
