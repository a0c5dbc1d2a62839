"""Replays over real HTTP (the local Functions host, its replay timer and its forwarder on Azurite): a stored
message goes to the router queue byte for byte, marked as a replay, and the request, the delivery and the
job are recorded; bad requests are refused with nothing stored; a bulk job needs confirming past the
limit, is refused over messages another unfinished job holds, and can be cancelled."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from eventstore import EventStore
from eventstore.replay_wire import ReplayMarks, parse_queue_message
from eventstore.store import AUDIT_STREAM_ID
from tests.helpers import REPLAY_ROUTER_QUEUE
from tests.http.client import Api, Response, assert_problem, envelope

WHO = "ops@contoso.example"


@pytest.fixture(scope="module")
def router_queue(azurite: Any) -> Iterator[QueueClient]:
    client = QueueClient.from_connection_string(azurite.connection_string, REPLAY_ROUTER_QUEUE)
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    yield client
    client.close()


def take_replay(queue: QueueClient, replay_id: str, timeout: float = 30.0) -> tuple[ReplayMarks, bytes, str | None]:
    """The replay `replay_id` as the router received it (other tests' replays are left on the queue)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in queue.receive_messages(max_messages=32, visibility_timeout=1):
            marks, body, content_type = parse_queue_message(base64.b64decode(message.content))
            if marks is not None and str(marks.replay_id) == replay_id:
                queue.delete_message(message)
                return marks, body, content_type
        time.sleep(0.2)
    raise AssertionError(f"replay {replay_id} did not reach the router queue within {timeout:g} s")


def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.2)


def post_json(api: Api, path: str, document: Any, **headers: str) -> Response:
    return api.post(path, json.dumps(document).encode(), **headers)


def record(api: Api, tenant_id: str, **properties: str) -> tuple[str, bytes]:
    body = envelope(tenant_id, properties={"WorkflowInstanceId": f"deal-{uuid4().hex[:8]}", **properties})
    answer = api.post(f"tenants/{tenant_id}/messages", body)
    assert answer.status == 202, answer.body
    return str(answer.json()["eventId"]), body


def audit(store: EventStore, tenant_id: str, event_type: str) -> list[dict[str, Any]]:
    events = store.tenant(tenant_id).read_stream(AUDIT_STREAM_ID)
    return [json.loads(e.payload or b"{}") for e in events if e.event_type == event_type]


def test_a_message_goes_to_the_router_byte_exact_marked_and_recorded(
    api: Api, tenant_id: str, store: EventStore, router_queue: QueueClient
) -> None:
    event_id, body = record(api, tenant_id)
    path = f"tenants/{tenant_id}/messages/{event_id}/replay"
    plan = post_json(api, path, {"reason": "CRM outage fixed", "requestedBy": WHO, "dryRun": True})
    assert plan.status == 200, plan.body
    assert plan.json()["matched"] == 1 and plan.json()["sample"][0]["eventId"] == event_id
    assert plan.json()["target"] == f"queue:{REPLAY_ROUTER_QUEUE}"
    assert audit(store, tenant_id, "ReplayRequested") == []  # a dry run records nothing

    accepted = post_json(api, path, {"reason": "CRM outage fixed", "requestedBy": WHO})
    assert accepted.status == 202, accepted.body
    replay_id, job_id = accepted.json()["replayId"], accepted.json()["jobId"]
    assert accepted.headers["location"].endswith(f"/replays/{job_id}")

    marks, delivered, content_type = take_replay(router_queue, replay_id)
    assert delivered == body  # the stored bytes, not a re-serialisation
    assert content_type is not None and content_type.startswith("application/")
    assert (marks.original_event_id, marks.tenant_id, marks.job_id) == (UUID(event_id), tenant_id, UUID(job_id))
    assert marks.idempotency_key == json.loads(body)["operationId"]

    job = eventually(
        lambda: (j := api.get(f"tenants/{tenant_id}/replays/{job_id}").json())["state"] == "finished" and j
    )
    assert (job["matched"], job["sent"], job["counts"]["sent"], job["kind"]) == (1, 1, 1, "single")
    assert job["requestedBy"] == WHO and job["reason"] == "CRM outage fixed"
    [requested] = audit(store, tenant_id, "ReplayRequested")
    assert (requested["jobId"], requested["requestedBy"], requested["matched"]) == (job_id, WHO, 1)
    assert requested["target"] == f"queue:{REPLAY_ROUTER_QUEUE}"
    [replayed] = audit(store, tenant_id, "MessageReplayed")
    assert (replayed["replayId"], replayed["originalEventId"]) == (replay_id, event_id)
    [finished] = audit(store, tenant_id, "ReplayJobChanged")
    assert (finished["jobId"], finished["state"]) == (job_id, "finished")
    listed = api.get(f"tenants/{tenant_id}/replays").json()["jobs"]
    assert [j["jobId"] for j in listed] == [job_id]


def test_bad_replay_requests_are_refused_and_record_nothing(api: Api, tenant_id: str, store: EventStore) -> None:
    event_id, _ = record(api, tenant_id)
    path = f"tenants/{tenant_id}/messages/{event_id}/replay"
    assert_problem(post_json(api, path, {"requestedBy": WHO}), 400, field="reason")
    assert_problem(post_json(api, path, {"reason": "   ", "requestedBy": WHO}), 400, field="reason")
    assert_problem(post_json(api, path, {"reason": "why"}), 400, field="requestedBy")
    assert_problem(post_json(api, path, {"reason": "why", "requestedBy": WHO, "extra": 1}), 400, field="extra")
    assert_problem(api.post(path, b'{"reason": "why"', requestedBy=WHO), 400)
    assert_problem(api.post(path, b"reason=why", "application/x-www-form-urlencoded"), 415)
    unknown = f"tenants/{tenant_id}/messages/{uuid4()}/replay"
    assert_problem(post_json(api, unknown, {"reason": "why", "requestedBy": WHO}), 404)
    outcome = native_outcome(api, tenant_id)
    assert_problem(
        post_json(api, f"tenants/{tenant_id}/messages/{outcome}/replay", {"reason": "why", "requestedBy": WHO}),
        400,
        field="eventId",
    )
    nothing = {"filter": {"workflowId": "no-such-workflow"}, "reason": "why", "requestedBy": WHO}
    assert_problem(post_json(api, f"tenants/{tenant_id}/replays", nothing), 422)
    assert_problem(api.get(f"tenants/{tenant_id}/replays/{uuid4()}"), 404)
    assert_problem(api.get(f"tenants/{tenant_id}/replays/not-a-uuid"), 400, field="jobId")
    assert audit(store, tenant_id, "ReplayRequested") == []
    assert api.get(f"tenants/{tenant_id}/replays").json()["jobs"] == []


def native_outcome(api: Api, tenant_id: str) -> str:
    outcome_id = str(uuid4())
    body = json.dumps({"eventId": outcome_id, "eventType": "StepCompleted", "payload": {"n": 1}}).encode()
    assert api.post(f"tenants/{tenant_id}/instances/deal-x/events", body).status == 201
    return outcome_id


def test_store_recorded_replay_events_cannot_be_sent_by_clients(api: Api, tenant_id: str) -> None:
    for kind in ("ReplayRequested", "MessageReplayed", "ReplayJobChanged"):
        body = json.dumps({"eventId": str(uuid4()), "eventType": kind, "payload": {}}).encode()
        assert_problem(api.post(f"tenants/{tenant_id}/instances/deal-x/events", body), 400, field="eventType")


def test_a_bulk_job_needs_confirming_past_the_limit_and_never_doubles_a_message(
    api: Api, tenant_id: str, store: EventStore, router_queue: QueueClient
) -> None:
    for _ in range(3):
        record(api, tenant_id, WorkflowId="bulk-wf")
    request = {"filter": {"workflowId": "bulk-wf"}, "reason": "template fixed", "requestedBy": WHO}
    dry = post_json(api, f"tenants/{tenant_id}/replays", {**request, "dryRun": True})
    assert dry.status == 200 and dry.json()["matched"] == 3, dry.body
    # The suite's host lets a job replay at most 2 messages without confirm (EVENTSTORE_REPLAY_CONFIRM_OVER).
    assert_problem(post_json(api, f"tenants/{tenant_id}/replays", request), 409, matched=3, limit=2)
    slow = post_json(api, f"tenants/{tenant_id}/replays", {**request, "confirm": True, "rate": 0.01})
    assert slow.status == 202, slow.body
    job_id = slow.json()["jobId"]
    # Another job over the same messages while the first is unfinished: refused, naming it.
    overlap = post_json(api, f"tenants/{tenant_id}/replays", {**request, "confirm": True})
    assert_problem(overlap, 409, jobs=[job_id])
    cancelled = api.request(
        "DELETE",
        f"tenants/{tenant_id}/replays/{job_id}",
        body=json.dumps({"requestedBy": WHO, "reason": "wrong filter"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert cancelled.status == 200 and cancelled.json()["state"] == "cancelled", cancelled.body
    # Every item is cancelled, or was already handed to the router (sent) or on its way there (sending: a
    # forwarder had claimed it; cancelling does not take back a message in flight). None is left waiting.
    counts = cancelled.json()["counts"]
    # From the item counts (one query), not the job's `sent`: a forwarder may finish a send between the two reads.
    assert counts["cancelled"] + counts["sending"] + counts["sent"] == 3, counts
    assert counts["pending"] == counts["queued"] == 0, counts
    again = post_json(api, f"tenants/{tenant_id}/replays", {**request, "confirm": True})
    assert again.status == 202, again.body
    job = eventually(
        lambda: (
            (j := api.get(f"tenants/{tenant_id}/replays/{again.json()['jobId']}").json())["state"] == "finished" and j
        )
    )
    assert job["sent"] == 3
    changes = [(c["jobId"], c["state"], c["by"]) for c in audit(store, tenant_id, "ReplayJobChanged")]
    assert (job_id, "cancelled", WHO) in changes and (job["jobId"], "finished", "replay") in changes
