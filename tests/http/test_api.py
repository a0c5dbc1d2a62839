"""The HTTP API, end to end on a real PostgreSQL: every route's answers and error statuses.

Requests go over real HTTP to the local Functions host when the suite provides `api_url`; without it
they go in-process to the same registered function objects (same routing by route template and method,
same `HttpRequest`/`HttpResponse`), so the tests run either way.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest

from eventstore import AUDIT_STREAM_ID, START, EventStore, NewEvent, Settings, instance_stream_id
from eventstore.errors import StoreUnavailable
from eventstore.http.problems import problem_response
from eventstore_local.samples import (
    CLAIM_INSTANCE_ID,
    FAILED_INSTANCE_ID,
    FAULTED_INSTANCE_ID,
    expense_claim_walk,
)
from tests.helpers import random_tenant_id
from tests.http.client import (
    Api,
    assert_problem,
    cloudevent,
    envelope,
    native,
    versions,
)

# --- tenants ------------------------------------------------------------------------------------------


def test_tenants_onboard_idempotently_and_show_their_placement(api: Api) -> None:
    tenant = random_tenant_id()
    first = api.request("PUT", f"tenants/{tenant}")
    assert first.status == 201 and first.headers["location"] == f"/api/tenants/{tenant}"
    placement = first.json()
    assert placement["tenantId"] == tenant and placement["dsnName"] == "default"
    assert placement["schema"].startswith("es_") and len(placement["container"]) == 40
    again = api.request("PUT", f"tenants/{tenant}", body=b"{}", headers={"Content-Type": "application/json"})
    assert again.status == 200 and again.json() == placement
    shown = api.get(f"tenants/{tenant}")
    assert shown.status == 200 and shown.json() == placement


def test_tenant_placement_can_be_chosen_once(api: Api) -> None:
    tenant = random_tenant_id()
    schema = "es_custom_" + tenant[:16]
    body = json.dumps({"schema": schema}).encode()
    answer = api.request("PUT", f"tenants/{tenant}", body=body, headers={"Content-Type": "application/json"})
    assert answer.status == 201 and answer.json()["schema"] == schema
    moved = json.dumps({"schema": schema + "x"}).encode()
    assert_problem(
        api.request("PUT", f"tenants/{tenant}", body=moved, headers={"Content-Type": "application/json"}),
        409,
        field="schema",
    )
    assert api.get(f"tenants/{tenant}").json()["schema"] == schema


def test_tenant_errors(api: Api) -> None:
    assert_problem(api.get(f"tenants/{random_tenant_id()}"), 404)
    assert_problem(api.get("tenants/Litware"), 400, field="tenantId")
    assert_problem(api.request("PUT", "tenants/" + "A" * 64), 400)
    tenant = random_tenant_id()
    json_headers = {"Content-Type": "application/json"}
    assert_problem(api.request("PUT", f"tenants/{tenant}", body=b"{", headers=json_headers), 400)
    assert_problem(api.request("PUT", f"tenants/{tenant}", body=b'{"shard": 1}', headers=json_headers), 400)
    assert_problem(api.request("PUT", f"tenants/{tenant}", body=b'{"dsnName": "nowhere"}', headers=json_headers), 400)
    assert_problem(
        api.request("PUT", f"tenants/{tenant}", body=b"schema=x", headers={"Content-Type": "text/plain"}), 415
    )
    assert_problem(api.get(f"tenants/{tenant}"), 404)  # none of those onboarded it


# --- messages -----------------------------------------------------------------------------------------


def test_a_message_is_recorded_byte_exact_and_a_repeat_answers_the_same(
    api: Api, tenant_id: str, store: EventStore
) -> None:
    body = envelope(tenant_id)
    answer = api.post(f"tenants/{tenant_id}/messages", body)
    assert answer.status == 202, answer.body
    accepted = answer.json()
    operation_id = json.loads(body)["operationId"]
    assert accepted == {
        "eventId": operation_id,
        "sequenceNumber": 1,
        "globalPosition": accepted["globalPosition"],
        "repeated": False,
    }
    location = answer.headers["location"]
    assert location == f"/api/tenants/{tenant_id}/events/{operation_id}"

    stored = api.get(location.removeprefix("/api/"))
    assert stored.status == 200 and stored.body == body
    assert stored.content_type == "application/json"
    assert stored.headers["etag"] == f'"{hashlib.sha256(body).hexdigest()}"'
    assert stored.headers["x-event-type"] == "TriggerReceived"
    assert stored.headers["x-event-sequence"] == "1"

    repeat = api.post(f"tenants/{tenant_id}/messages", body)
    assert repeat.status == 202 and repeat.json() == {**accepted, "repeated": True}
    assert repeat.headers["location"] == location
    assert versions(store, tenant_id, AUDIT_STREAM_ID) == [1]

    other_bytes = json.dumps(json.loads(body)).encode()  # same operationId, other bytes
    assert_problem(api.post(f"tenants/{tenant_id}/messages", other_bytes), 409, eventId=operation_id)
    assert versions(store, tenant_id, AUDIT_STREAM_ID) == [1]


def test_a_start_request_message_is_recorded_with_its_workflow(api: Api, tenant_id: str, store: EventStore) -> None:
    body = envelope(tenant_id, "envelope-start-request.json")
    content_type = "application/vnd.marain.workflows.hosted.messageenvelope"
    answer = api.post(f"tenants/{tenant_id}/messages", body, content_type)
    assert answer.status == 202
    (event,) = store.tenant(tenant_id).read_stream(AUDIT_STREAM_ID)
    assert event.event_type == "InstanceCreationRequestReceived"
    assert (event.workflow_id, event.workflow_instance_id) == ("simple-expenses-workflow", CLAIM_INSTANCE_ID)
    assert event.source_system == "http" and event.payload == body


def test_bad_messages_store_nothing(api: Api, tenant_id: str, store: EventStore) -> None:
    path = f"tenants/{tenant_id}/messages"
    other_tenant = random_tenant_id()
    assert_problem(api.post(path, envelope(other_tenant)), 400, field="tenantId")
    assert_problem(api.post(path, envelope(tenant_id, operationId="op-1")), 400, field="operationId")
    assert_problem(api.post(path, envelope(tenant_id, isStartWorkflowRequest=True)), 400, field="isTrigger")
    assert_problem(api.post(path, b'{"tenantId": '), 400, field="body")
    assert_problem(api.post(path, b"\xff"), 400, field="body")
    assert_problem(api.post(path, envelope(tenant_id), "text/plain"), 415, field="Content-Type")
    assert_problem(api.post(path, envelope(tenant_id), "application/json; charset=latin-1"), 400)
    assert_problem(api.post(f"tenants/{other_tenant}/messages", envelope(other_tenant)), 404)
    assert_problem(api.post("tenants/not-a-tenant/messages", envelope(tenant_id)), 400, field="tenantId")
    assert versions(store, tenant_id, AUDIT_STREAM_ID) == [0]
    assert api.get(f"tenants/{other_tenant}").status == 404


def test_a_body_over_the_limit_is_413(api: Api, tenant_id: str, store: EventStore) -> None:
    limit = int(Settings.model_fields["max_payload_size"].default)
    answer = api.post(f"tenants/{tenant_id}/instances/i-1/events", b" " * (limit + 1))
    assert_problem(answer, 413, field="body")
    assert versions(store, tenant_id, instance_stream_id("i-1")) == [0]


def test_a_payload_over_the_inline_limit_goes_to_blob_or_is_413(api: Api, tenant_id: str, store: EventStore) -> None:
    inline_limit = store.settings.inline_payload_limit
    payload = b'{"big": "' + b"x" * inline_limit + b'"}'
    answer = api.post(f"tenants/{tenant_id}/instances/big/events", native(payload=payload))
    if answer.status == 413:  # no Blob storage configured: refused, and nothing stored
        assert_problem(answer, 413)
        assert versions(store, tenant_id, instance_stream_id("big")) == [0]
        return
    assert answer.status == 201, answer.body
    (event_id,) = answer.json()["eventIds"]
    history = api.get(f"tenants/{tenant_id}/instances/big/events").json()
    assert history["events"][0]["payloadUrl"] == f"/api/tenants/{tenant_id}/events/{event_id}"
    assert "payload" not in history["events"][0]
    assert api.get(f"tenants/{tenant_id}/events/{event_id}").body == payload


# --- outcomes -----------------------------------------------------------------------------------------


def test_outcomes_append_with_positions_and_optimistic_concurrency(api: Api, tenant_id: str, store: EventStore) -> None:
    path = f"tenants/{tenant_id}/instances/{CLAIM_INSTANCE_ID}/events"
    created = json.dumps(cloudevent(tenant_id), indent=4).encode()
    first = api.post(path, created, "application/cloudevents+json", **{"If-Match": '"0"'})
    assert first.status == 201, first.body
    assert first.json()["sequenceNumbers"] == [1] and first.json()["version"] == 1
    assert first.headers["etag"] == '"1"'
    assert first.headers["location"].endswith(f"/instances/{CLAIM_INSTANCE_ID}/events?fromSequence=1")

    batch = b"[" + native("StepStarted") + b",\n " + native("StepCompleted", b" [ 1 , 2 ] ") + b"]"
    second = api.post(path, batch, **{"If-Match": '"1"'})
    assert second.status == 201
    appended = second.json()
    assert appended["sequenceNumbers"] == [2, 3] and appended["version"] == 3 and not appended["repeated"]
    assert len(appended["globalPositions"]) == 2 and len(appended["eventIds"]) == 2

    repeat = api.post(path, batch, **{"If-Match": '"1"'})
    assert repeat.status == 201 and repeat.json() == {**appended, "repeated": True}

    stale = api.post(path, b"[" + native() + b"]", **{"If-Match": '"1"'})
    assert_problem(stale, 409, actualVersion=3)
    assert_problem(api.post(f"tenants/{tenant_id}/instances/new-one/events", native(), **{"If-Match": "*"}), 409)
    assert versions(store, tenant_id, instance_stream_id(CLAIM_INSTANCE_ID), instance_stream_id("new-one")) == [3, 0]

    stored = store.tenant(tenant_id).read_stream(instance_stream_id(CLAIM_INSTANCE_ID))
    assert stored[0].payload == created and stored[0].content_type == "application/cloudevents+json"
    assert stored[2].payload == b"[ 1 , 2 ]"  # the value's own text, without the whitespace around it
    assert all(e.workflow_instance_id == CLAIM_INSTANCE_ID for e in stored)


def test_bad_outcomes_store_nothing(api: Api, tenant_id: str, store: EventStore) -> None:
    path = f"tenants/{tenant_id}/instances/{CLAIM_INSTANCE_ID}/events"
    problem = assert_problem(api.post(path, native("NotAType")), 400, field="eventType")
    assert "TransitionFailed" in problem["validEventTypes"]
    assert_problem(api.post(path, json.dumps(cloudevent(tenant_id, type="io.marain.other")).encode()), 400)
    assert_problem(api.post(path, json.dumps(cloudevent(tenant_id, subject="other")).encode()), 400)
    assert_problem(api.post(path, json.dumps(cloudevent(random_tenant_id())).encode()), 400)
    good = native()
    assert_problem(api.post(path, b"[" + good + b", " + native("Nope") + b"]"), 400, field="events[1].eventType")
    assert_problem(api.post(path, b"[" + good + b", " + good + b"]"), 409)  # one id twice in a batch
    assert_problem(api.post(path, b"[" + good), 400, field="body")
    assert_problem(api.post(path, b"[]"), 400)
    assert_problem(api.post(path, good, "text/plain"), 415)
    assert_problem(api.post(path, good, **{"If-Match": "yes"}), 400, field="If-Match")
    assert_problem(api.post(f"tenants/{tenant_id}/instances/{'x' * 300}/events", good), 400)
    assert_problem(api.post(f"tenants/{random_tenant_id()}/instances/i/events", good), 404)
    assert versions(store, tenant_id, instance_stream_id(CLAIM_INSTANCE_ID)) == [0]
    assert api.post(path, good).status == 201  # the same event, now fine on its own


# --- queries ------------------------------------------------------------------------------------------


def record_walk(store: EventStore, tenant: str) -> None:
    """The sample expense-claim walk, stored for `tenant` (its own ids are deterministic, so each tenant
    of the test run gets the walk under its own schema)."""
    events = store.tenant(tenant)
    for step in expense_claim_walk():
        events.append(step.stream_id, [step.event])
    # The audit reads in commit-safe order: on a shared server another session's open transaction keeps
    # these events out of it for a while. Wait for them (bounded), so the searches see the whole walk.
    deadline = time.monotonic() + 30
    while len(events.read_all(START, limit=1000).events) < len(expense_claim_walk()) and time.monotonic() < deadline:
        time.sleep(0.01)


def test_history_inlines_exact_json_and_links_other_payloads(api: Api, tenant_id: str, store: EventStore) -> None:
    path = f"tenants/{tenant_id}/instances/i-1/events"
    payload = b'{"b": 1,  "a": "\\u00e9", "b": 2}'
    assert api.post(path, native(payload=payload)).status == 201
    text = NewEvent(event_id=uuid4(), event_type="UserInput", payload=b"plain words", content_type="text/plain")
    store.tenant(tenant_id).append(instance_stream_id("i-1"), [text])
    answer = api.get(path)
    assert answer.status == 200 and answer.content_type == "application/json"
    assert b'"payload": ' + payload + b"}" in answer.body  # spliced in as stored, never re-serialised
    history = answer.json()
    assert history["workflowInstanceId"] == "i-1" and history["continuation"] is None
    first, second = history["events"]
    assert (first["sequenceNumber"], second["sequenceNumber"]) == (1, 2)
    assert first["payload"] == {"b": 2, "a": "é"} and first["workflowInstanceId"] == "i-1"
    assert first["payloadSha256"] == hashlib.sha256(payload).hexdigest() and first["payloadSize"] == len(payload)
    assert "payload" not in second and second["payloadUrl"] == f"/api/tenants/{tenant_id}/events/{text.event_id}"
    raw = api.get(second["payloadUrl"].removeprefix("/api/"))
    assert raw.body == b"plain words" and raw.content_type == "text/plain"
    envelope_form = api.get(second["payloadUrl"].removeprefix("/api/"), format="envelope").json()
    assert base64.b64decode(envelope_form["payloadBase64"]) == b"plain words"
    assert envelope_form["eventType"] == "UserInput"


def test_history_pages_are_stable_while_appends_happen(api: Api, tenant_id: str) -> None:
    path = f"tenants/{tenant_id}/instances/busy/events"
    assert api.post(path, b"[" + b",".join(native() for _ in range(25)) + b"]").status == 201
    stop = threading.Event()
    failures: list[int] = []

    def append() -> None:
        while not stop.is_set():
            status = api.post(path, native()).status
            if status != 201:
                failures.append(status)

    writer = threading.Thread(target=append)
    writer.start()
    seen: list[int] = []
    try:
        params: dict[str, str] = {"limit": "7"}
        while True:
            page = api.get(path, **params)
            assert page.status == 200, page.body
            body = page.json()
            seen += [e["sequenceNumber"] for e in body["events"]]
            if body["continuation"] is None or len(seen) >= 60:
                break
            params = {"limit": "7", "continuation": body["continuation"]}
            time.sleep(0.01)
    finally:
        stop.set()
        writer.join()
    assert not failures
    assert seen == list(range(1, len(seen) + 1))  # in order, no gap, no repeat
    assert len(seen) >= 25


def test_audit_pages_never_skip_or_repeat_while_appends_happen(api: Api, tenant_id: str) -> None:
    before = [f"tenants/{tenant_id}/instances/w{i}/events" for i in range(4)]
    for path in before:
        assert api.post(path, b"[" + native() + b"," + native() + b"]").status == 201
    stop = threading.Event()
    failures: list[int] = []

    def append(index: int) -> None:
        while not stop.is_set():
            status = api.post(f"tenants/{tenant_id}/instances/w{index}/events", native()).status
            if status != 201:
                failures.append(status)

    writers = [threading.Thread(target=append, args=(i,)) for i in range(3)]
    for writer in writers:
        writer.start()
    paged: list[str] = []
    try:
        params = {"limit": "5"}
        for _ in range(12):
            page = api.get(f"tenants/{tenant_id}/audit", **params).json()
            paged += [e["eventId"] for e in page["events"]]
            if page["continuation"] is None:
                break
            params = {"limit": "5", "continuation": page["continuation"]}
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    assert not failures
    everything = [e["eventId"] for e in api.get(f"tenants/{tenant_id}/audit", limit="1000").json()["events"]]
    assert len(paged) == len(set(paged)) >= 8  # no repeats; the events from before are all there
    assert paged == everything[: len(paged)]  # no skips: what was paged is a prefix of the final order


def test_continuation_tokens_are_bound_to_their_query(api: Api, tenant_id: str) -> None:
    for instance in ("a", "b"):
        path = f"tenants/{tenant_id}/instances/{instance}/events"
        assert api.post(path, b"[" + native() + b"," + native() + b"]").status == 201
    token = api.get(f"tenants/{tenant_id}/instances/a/events", limit="1").json()["continuation"]
    assert token
    nxt = api.get(f"tenants/{tenant_id}/instances/a/events", limit="1", continuation=token).json()
    assert [e["sequenceNumber"] for e in nxt["events"]] == [2] and nxt["continuation"] is None
    assert_problem(api.get(f"tenants/{tenant_id}/instances/b/events", continuation=token), 400, field="continuation")
    assert_problem(api.get(f"tenants/{tenant_id}/audit", continuation=token), 400, field="continuation")
    assert_problem(api.get(f"tenants/{tenant_id}/instances/a/events", continuation="garbage!"), 400)
    audit_token = api.get(f"tenants/{tenant_id}/audit", limit="1").json()["continuation"]
    assert audit_token
    assert_problem(api.get(f"tenants/{tenant_id}/audit", continuation=audit_token, eventType="Error"), 400)


def test_history_and_state_errors(api: Api, tenant_id: str) -> None:
    assert_problem(api.get(f"tenants/{tenant_id}/instances/nobody/events"), 404)
    assert_problem(api.get(f"tenants/{tenant_id}/instances/nobody/state"), 404)
    assert api.post(f"tenants/{tenant_id}/instances/i/events", native()).status == 201
    assert_problem(api.get(f"tenants/{tenant_id}/instances/i/events", limit="0"), 400, field="limit")
    assert_problem(api.get(f"tenants/{tenant_id}/instances/i/events", limit="x"), 400, field="limit")
    assert_problem(api.get(f"tenants/{tenant_id}/instances/i/events", fromSequence="0"), 400)
    assert_problem(api.get(f"tenants/{tenant_id}/instances/i/events", color="red"), 400, field="color")
    assert_problem(api.get(f"tenants/{tenant_id}/instances/i/state", atSequence="2"), 404, field="atSequence")
    assert_problem(api.get(f"tenants/{random_tenant_id()}/instances/i/events"), 404)
    assert api.get(f"tenants/{tenant_id}/instances/i/events", fromSequence="5").json()["events"] == []


def test_state_is_rebuilt_at_any_sequence(api: Api, tenant_id: str, store: EventStore) -> None:
    record_walk(store, tenant_id)
    walk = [s for s in expense_claim_walk() if s.stream_id == instance_stream_id(CLAIM_INSTANCE_ID)]
    for sequence, step in enumerate(walk, 1):
        answer = api.get(f"tenants/{tenant_id}/instances/{CLAIM_INSTANCE_ID}/state", atSequence=str(sequence))
        assert answer.status == 200
        state = answer.json()
        assert step.expected is not None
        assert (state["stateId"], state["status"], state["context"], state["lastSequence"]) == (
            step.expected.state_id,
            step.expected.status,
            step.expected.context,
            sequence,
        )
    latest = api.get(f"tenants/{tenant_id}/instances/{CLAIM_INSTANCE_ID}/state").json()
    assert latest["status"] == "complete" and latest["stateId"] == "paid" and latest["lastSequence"] == len(walk)
    initial = api.get(f"tenants/{tenant_id}/instances/{CLAIM_INSTANCE_ID}/state", atSequence="0").json()
    assert initial["lastSequence"] == 0 and initial["status"] is None


def test_faulted_instances_are_listed_page_by_page(api: Api, tenant_id: str, store: EventStore) -> None:
    record_walk(store, tenant_id)
    faulted = api.get(f"tenants/{tenant_id}/instances", status="faulted")
    assert faulted.status == 200
    body = faulted.json()
    assert sorted(i["workflowInstanceId"] for i in body["instances"]) == sorted(
        [FAULTED_INSTANCE_ID, FAILED_INSTANCE_ID]
    )
    assert all(i["status"] == "faulted" and i["lastError"] for i in body["instances"])

    ids: list[str] = []
    params = {"limit": "1"}
    for _ in range(10):
        page = api.get(f"tenants/{tenant_id}/instances", **params).json()
        ids += [i["workflowInstanceId"] for i in page["instances"]]
        if page["continuation"] is None:
            break
        params = {"limit": "1", "continuation": page["continuation"]}
    assert ids == sorted([CLAIM_INSTANCE_ID, FAULTED_INSTANCE_ID, FAILED_INSTANCE_ID])
    token = api.get(f"tenants/{tenant_id}/instances", limit="1").json()["continuation"]
    assert_problem(api.get(f"tenants/{tenant_id}/instances", status="faulted", continuation=token), 400)
    assert_problem(api.get(f"tenants/{tenant_id}/instances", status="no such status!"), 400, field="status")


def test_the_audit_is_searched_by_type_workflow_time_and_instance(api: Api, tenant_id: str, store: EventStore) -> None:
    record_walk(store, tenant_id)
    everything = api.get(f"tenants/{tenant_id}/audit", limit="1000").json()
    assert len(everything["events"]) == len(expense_claim_walk()) and everything["continuation"] is None

    triggers = api.get(f"tenants/{tenant_id}/audit", eventType="TriggerReceived").json()["events"]
    assert len(triggers) == 7 and {e["streamId"] for e in triggers} == {AUDIT_STREAM_ID}
    failures = api.get(f"tenants/{tenant_id}/audit", eventType="TransitionFailed, InstanceCreationFailed").json()
    assert {e["workflowInstanceId"] for e in failures["events"]} == {FAULTED_INSTANCE_ID, FAILED_INSTANCE_ID}
    by_workflow = api.get(f"tenants/{tenant_id}/audit", workflowId="external-action-workflow").json()["events"]
    assert {e["workflowInstanceId"] for e in by_workflow} == {FAULTED_INSTANCE_ID}
    by_instance = api.get(f"tenants/{tenant_id}/audit", instanceId=CLAIM_INSTANCE_ID).json()["events"]
    assert [e["sequenceNumber"] for e in by_instance] == list(range(1, 8))

    recorded = [e["recordedAt"] for e in everything["events"]]
    assert api.get(f"tenants/{tenant_id}/audit", to=min(recorded)).json()["events"] == []
    assert len(api.get(f"tenants/{tenant_id}/audit", **{"from": min(recorded)}).json()["events"]) == len(recorded)

    paged: list[str] = []
    params = {"limit": "4"}
    while True:
        page = api.get(f"tenants/{tenant_id}/audit", **params).json()
        paged += [e["eventId"] for e in page["events"]]
        if page["continuation"] is None:
            break
        params = {"limit": "4", "continuation": page["continuation"]}
    assert paged == [e["eventId"] for e in everything["events"]]

    assert_problem(api.get(f"tenants/{tenant_id}/audit", eventType="Nope"), 400, field="eventType")
    assert_problem(api.get(f"tenants/{tenant_id}/audit", **{"from": "yesterday"}), 400, field="from")
    assert_problem(api.get(f"tenants/{tenant_id}/audit", **{"from": "2024-01-01T00:00:00"}), 400, field="from")
    assert_problem(api.get(f"tenants/{tenant_id}/audit", limit="1001"), 400, field="limit")
    assert_problem(api.get(f"tenants/{random_tenant_id()}/audit"), 404)


def test_one_event_with_its_exact_payload_and_headers(api: Api, tenant_id: str) -> None:
    created = json.dumps(cloudevent(tenant_id), indent=1).encode()
    path = f"tenants/{tenant_id}/instances/{CLAIM_INSTANCE_ID}/events"
    (event_id,) = api.post(path, created, "application/cloudevents+json").json()["eventIds"]
    answer = api.get(f"tenants/{tenant_id}/events/{event_id}")
    assert answer.status == 200 and answer.body == created
    assert answer.content_type == "application/cloudevents+json"
    etag = answer.headers["etag"]
    assert etag == f'"{hashlib.sha256(created).hexdigest()}"'
    assert answer.headers["x-event-sequence"] == "1" and answer.headers["x-event-id"] == event_id
    assert answer.headers["x-event-stream"] == instance_stream_id(CLAIM_INSTANCE_ID)
    cached = api.request("GET", f"tenants/{tenant_id}/events/{event_id}", headers={"If-None-Match": etag})
    assert cached.status == 304 and cached.body == b""
    whole = api.get(f"tenants/{tenant_id}/events/{event_id}", format="envelope")
    assert whole.status == 200 and whole.content_type == "application/json"
    assert b'"payload": ' + created + b"}" in whole.body
    assert whole.json()["eventType"] == "InstanceCreated"

    assert_problem(api.get(f"tenants/{tenant_id}/events/not-a-uuid"), 400, field="eventId")
    assert_problem(api.get(f"tenants/{tenant_id}/events/{uuid4()}"), 404)
    assert_problem(api.get(f"tenants/{tenant_id}/events/{event_id}", format="xml"), 400, field="format")
    other = random_tenant_id()
    assert api.request("PUT", f"tenants/{other}").status == 201
    assert_problem(api.get(f"tenants/{other}/events/{event_id}"), 404)  # only under its own tenant


def test_unknown_routes_and_methods_are_not_served(api: Api) -> None:
    assert api.request("DELETE", f"tenants/{random_tenant_id()}").status in (404, 405)
    assert api.get("tenants").status in (404, 405)


# --- queues -------------------------------------------------------------------------------------------


class Queues:
    """Delivers queue messages: through Azurite to the local host's queue triggers, or in-process."""

    def send(self, queue: str, body: bytes) -> None:
        raise NotImplementedError

    def expect_poisoned(self, *messages: tuple[str, bytes]) -> None:
        """Deliver each (queue, body), which must fail until the host moves it to `<queue>-poison`."""
        raise NotImplementedError


class AzuriteQueues(Queues):
    def __init__(self, connection_string: str) -> None:
        self.connection_string = connection_string

    def _client(self, queue: str) -> Any:
        from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient

        return QueueClient.from_connection_string(
            self.connection_string,
            queue,
            message_encode_policy=BinaryBase64EncodePolicy(),
            message_decode_policy=BinaryBase64DecodePolicy(),
        )

    def send(self, queue: str, body: bytes) -> None:
        from azure.core.exceptions import ResourceExistsError

        client = self._client(queue)
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        client.send_message(body)

    def expect_poisoned(self, *messages: tuple[str, bytes]) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        for queue, body in messages:
            self.send(queue, body)
        waiting = list(messages)
        deadline = time.monotonic() + 240
        while waiting and time.monotonic() < deadline:
            time.sleep(1)
            for queue, body in list(waiting):
                try:
                    poisoned = [m.content for m in self._client(f"{queue}-poison").peek_messages(max_messages=32)]
                except ResourceNotFoundError:
                    continue
                if body in poisoned:
                    waiting.remove((queue, body))
        assert not waiting, f"{len(waiting)} message(s) never reached their poison queue"


@pytest.fixture(scope="session")
def queues(api: Api, azurite: Any) -> Queues:
    return AzuriteQueues(azurite.connection_string)


def eventually(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_queued_messages_are_recorded_once(queues: Queues, tenant_id: str, store: EventStore) -> None:
    body = envelope(tenant_id)
    queues.send("workflow-messages", body)
    queues.send("workflow-messages", body)  # at-least-once: delivered again
    eventually(lambda: versions(store, tenant_id, AUDIT_STREAM_ID) == [1])
    (event,) = store.tenant(tenant_id).read_stream(AUDIT_STREAM_ID)
    assert event.payload == body and event.source_system == "queue"
    later = envelope(tenant_id)
    queues.send("workflow-messages", later)  # the repeat did not take a position
    eventually(lambda: versions(store, tenant_id, AUDIT_STREAM_ID) == [2])


@pytest.mark.slow
def test_bad_queued_messages_end_in_the_poison_queue_and_store_nothing(
    api: Api, queues: Queues, tenant_id: str, store: EventStore
) -> None:
    stranger = random_tenant_id()
    queues.expect_poisoned(
        ("workflow-messages", envelope(tenant_id, operationId="nope")),
        ("workflow-messages", envelope(stranger)),  # a tenant never onboarded
        ("workflow-outcomes", json.dumps(cloudevent(tenant_id, type="io.marain.x")).encode()),
    )
    assert versions(store, tenant_id, AUDIT_STREAM_ID, instance_stream_id(CLAIM_INSTANCE_ID)) == [0, 0]
    assert api.get(f"tenants/{stranger}").status == 404


def test_queued_outcomes_are_appended(queues: Queues, tenant_id: str, store: EventStore) -> None:
    stream = instance_stream_id(CLAIM_INSTANCE_ID)
    created = json.dumps(cloudevent(tenant_id), indent=2).encode()
    queues.send("workflow-outcomes", created)
    eventually(lambda: versions(store, tenant_id, stream) == [1])
    wrapper = (
        f'{{"tenantId": "{tenant_id}", "workflowInstanceId": "{CLAIM_INSTANCE_ID}", "events": ['.encode()
        + native("StepCompleted", b'{ "x" : 1 }')
        + b"]}"
    )
    queues.send("workflow-outcomes", wrapper)
    queues.send("workflow-outcomes", wrapper)  # a redelivery is a repeat
    eventually(lambda: versions(store, tenant_id, stream) == [2])
    queues.send("workflow-outcomes", json.dumps(cloudevent(tenant_id, index=1)).encode())
    eventually(lambda: versions(store, tenant_id, stream) == [3])
    stored = store.tenant(tenant_id).read_stream(stream)
    assert [e.payload for e in stored[:2]] == [created, b'{ "x" : 1 }']


# --- problem details ----------------------------------------------------------------------------------


def test_a_store_outage_is_503_with_retry_after_and_no_internals() -> None:
    answer = problem_response(StoreUnavailable("database unavailable: host db.internal refused"), "/api/x")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    problem = json.loads(answer.get_body())
    assert problem["type"] == "urn:eventstore:problem:store-unavailable" and "db.internal" not in problem["detail"]
    unexpected = json.loads(problem_response(RuntimeError("secret"), "/api/x").get_body())
    assert unexpected["status"] == 500 and "secret" not in unexpected["detail"]


def test_stream_states_are_what_the_api_says(api: Api, tenant_id: str, store: EventStore) -> None:
    path = f"tenants/{tenant_id}/instances/s/events"
    assert api.post(path, native(), **{"If-Match": '"0"'}).status == 201
    assert api.post(path, native(), **{"If-Match": "*"}).json()["version"] == 2
    assert store.tenant(tenant_id).stream_version(instance_stream_id("s")) == 2
