"""The trace API over real HTTP (the local Functions host): an engine reports a message's execution through
the outcome route, out of order, and the routes answer with the whole trace, the message's status, the
executions, the steps by idempotency key and the failure counts, in the documented shapes; a replay's
execution with its replay id and the step it skipped; bad input is a 400 naming the parameter, unknown ids
a 404, and a continuation works only with its own filters."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote
from uuid import uuid4

from tests.helpers import random_tenant_id
from tests.http.client import Api, Response, assert_problem, envelope, native
from tests.http.test_openapi import DOCUMENT, errors

INSTANCE = "deal-api-1"
WORKFLOW = "deal-won-workflow"


def fits(answer: Response, route: str) -> Any:
    """The answer's JSON, checked against the document's 200 schema of GET `route`."""
    assert answer.status == 200, answer.body
    schema = DOCUMENT["paths"][route]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    body = answer.json()
    assert not errors(body, schema), errors(body, schema)
    return body


def post_message(api: Api, tenant_id: str, instance: str = INSTANCE) -> str:
    body = envelope(tenant_id, properties={"WorkflowInstanceId": instance, "WorkflowId": WORKFLOW})
    answer = api.post(f"tenants/{tenant_id}/messages", body)
    assert answer.status == 202, answer.body
    return str(answer.json()["eventId"])


def report(api: Api, tenant_id: str, events: list[tuple[str, dict[str, Any]]], instance: str = INSTANCE) -> None:
    """Trace events through the outcome route, one request each (as an engine reports as it goes)."""
    for kind, payload in events:
        body = native(kind, json.dumps(payload).encode(), workflowId=WORKFLOW)
        answer = api.post(f"tenants/{tenant_id}/instances/{quote(instance, safe='')}/events", body)
        assert answer.status == 201, answer.body


def execution(
    execution_id: str, message_id: str, *, mail_fails_for_good: bool = False
) -> list[tuple[str, dict[str, Any]]]:
    """Create a CRM record, then send an email that fails (503) on attempt 1 and then succeeds or, with
    `mail_fails_for_good`, fails again and the engine gives up on the message."""

    def step(step_id: str, name: str, attempt: int = 1, **extra: Any) -> dict[str, Any]:
        key = f"{message_id}/{name}"
        return {"executionId": execution_id, "stepId": step_id, "name": name, "attempt": attempt,
                "idempotencyKey": key, **extra}  # fmt: skip

    crm, mail = f"{execution_id}-crm", f"{execution_id}-mail"
    unavailable = {"message": "mail answered 503", "statusCode": 503, "body": '{"busy": true}'}
    events = [
        ("ExecutionStarted", {"executionId": execution_id, "messageEventId": message_id}),
        ("StepStarted", step(crm, "create-crm-record", input={"dealId": "42"})),
        ("StepCompleted", step(crm, "create-crm-record", output={"recordId": "crm-7"})),
        ("StepStarted", step(mail, "send-email", input={"to": "buyer@contoso.example"})),
        ("StepFailed", step(mail, "send-email", error=unavailable)),
        ("StepStarted", step(mail, "send-email", 2, input={"to": "buyer@contoso.example"})),
    ]
    if mail_fails_for_good:
        return [
            *events,
            ("StepFailed", step(mail, "send-email", 2, error=unavailable)),
            ("ExecutionFailed", {"executionId": execution_id, "error": {"message": "send-email failed"},
                                 "deadLettered": True}),
        ]  # fmt: skip
    return [
        *events,
        ("StepCompleted", step(mail, "send-email", 2, output={"sent": True})),
        ("ExecutionCompleted", {"executionId": execution_id}),
    ]


def test_an_engines_report_is_one_trace_with_the_messages_status_and_the_counts(api: Api, tenant_id: str) -> None:
    message_id = post_message(api, tenant_id)
    events = execution("exec-ok", message_id)
    # Out of order: the end and the completions first.
    report(api, tenant_id, [events[-1], events[2], *events[:2], *events[3:-1]])

    trace = fits(api.get(f"tenants/{tenant_id}/executions/exec-ok"), "/tenants/{tenantId}/executions/{executionId}")
    assert (trace["status"], trace["messageEventId"], trace["workflowId"], trace["workflowInstanceId"]) == (
        "succeeded",
        message_id,
        WORKFLOW,
        INSTANCE,
    )
    crm, mail = trace["steps"]
    assert (crm["name"], crm["status"], crm["attempts"], crm["input"], crm["output"]) == (
        "create-crm-record",
        "succeeded",
        1,
        {"dealId": "42"},
        {"recordId": "crm-7"},
    )
    assert (mail["name"], mail["status"], mail["attempts"], mail["output"]) == (
        "send-email",
        "succeeded",
        2,
        {"sent": True},
    )
    assert [(a["attempt"], a["status"]) for a in mail["attemptHistory"]] == [(1, "failed"), (2, "succeeded")]
    assert mail["attemptHistory"][0]["error"] == {
        "message": "mail answered 503",
        "statusCode": 503,
        "body": '{"busy": true}',
    }

    message = fits(api.get(f"tenants/{tenant_id}/messages/{message_id}"), "/tenants/{tenantId}/messages/{eventId}")
    assert (message["status"], message["latestExecutionId"], message["attempts"]) == ("succeeded", "exec-ok", 1)
    assert (message["eventType"], message["workflowId"], message["workflowInstanceId"]) == (
        "TriggerReceived",
        WORKFLOW,
        INSTANCE,
    )
    runs = fits(
        api.get(f"tenants/{tenant_id}/messages/{message_id}/executions"),
        "/tenants/{tenantId}/messages/{eventId}/executions",
    )
    assert [e["executionId"] for e in runs["executions"]] == ["exec-ok"]

    steps = fits(
        api.get(f"tenants/{tenant_id}/steps", idempotencyKey=f"{message_id}/send-email"), "/tenants/{tenantId}/steps"
    )
    assert [(s["stepId"], s["status"], s["output"]) for s in steps["steps"]] == [
        ("exec-ok-mail", "succeeded", {"sent": True})
    ]
    assert fits(api.get(f"tenants/{tenant_id}/steps", idempotencyKey="never-used"), "/tenants/{tenantId}/steps") == {
        "steps": []
    }

    counts = fits(
        api.get(f"tenants/{tenant_id}/metrics/failures", granularity="day"), "/tenants/{tenantId}/metrics/failures"
    )
    [bucket] = counts["buckets"]
    assert (bucket["workflowId"], bucket["messageType"], bucket["started"], bucket["succeeded"], bucket["failed"]) == (
        WORKFLOW,
        "Submit",
        1,
        1,
        0,
    )
    assert counts["truncated"] is False
    unplaced = fits(api.get(f"tenants/{tenant_id}/traces/unplaced"), "/tenants/{tenantId}/traces/unplaced")
    assert unplaced == {"count": 0, "events": []}


def test_failed_and_dead_lettered_runs_are_listed_by_status(api: Api, tenant_id: str) -> None:
    good, bad = post_message(api, tenant_id), post_message(api, tenant_id, "deal-api-2")
    report(api, tenant_id, execution("run-good", good))
    report(api, tenant_id, execution("run-bad", bad, mail_fails_for_good=True), instance="deal-api-2")

    failed = fits(api.get(f"tenants/{tenant_id}/executions", status="failed"), "/tenants/{tenantId}/executions")
    assert [e["executionId"] for e in failed["executions"]] == ["run-bad"]
    assert failed["executions"][0]["deadLettered"] is True
    assert failed["executions"][0]["error"] == {"message": "send-email failed", "statusCode": None, "body": None}
    dead = fits(api.get(f"tenants/{tenant_id}/messages", status="dead-lettered"), "/tenants/{tenantId}/messages")
    assert [m["eventId"] for m in dead["messages"]] == [bad]
    trace = api.get(f"tenants/{tenant_id}/executions/run-bad").json()
    mail = trace["steps"][1]
    assert (mail["status"], mail["attempts"], mail["error"]["statusCode"]) == ("failed", 2, 503)
    hours = fits(
        api.get(f"tenants/{tenant_id}/metrics/failures", workflowId=WORKFLOW), "/tenants/{tenantId}/metrics/failures"
    )
    totals = [sum(b[name] for b in hours["buckets"]) for name in ("started", "succeeded", "failed", "deadLettered")]
    assert totals == [2, 1, 1, 1]

    # Pages: one at a time, each token valid with its own filters only.
    first = fits(api.get(f"tenants/{tenant_id}/executions", limit="1"), "/tenants/{tenantId}/executions")
    assert [e["executionId"] for e in first["executions"]] == ["run-good"] and first["continuation"]
    second = api.get(f"tenants/{tenant_id}/executions", limit="1", continuation=first["continuation"]).json()
    assert [e["executionId"] for e in second["executions"]] == ["run-bad"]
    assert_problem(
        api.get(f"tenants/{tenant_id}/executions", status="failed", continuation=first["continuation"]),
        400,
        field="continuation",
    )
    messages = fits(api.get(f"tenants/{tenant_id}/messages", limit="1"), "/tenants/{tenantId}/messages")
    token = messages["continuation"]
    assert [m["eventId"] for m in messages["messages"]] == [good] and token
    assert [m["eventId"] for m in api.get(f"tenants/{tenant_id}/messages", continuation=token).json()["messages"]] == [
        bad
    ]
    assert_problem(api.get(f"tenants/{tenant_id}/messages", workflowId=WORKFLOW, continuation=token), 400)
    # A messages token is no executions token, nor another tenant's.
    assert_problem(api.get(f"tenants/{tenant_id}/executions", continuation=token), 400, field="continuation")
    other = random_tenant_id()
    assert api.request("PUT", f"tenants/{other}").status == 201
    assert_problem(api.get(f"tenants/{other}/messages", continuation=token), 400, field="continuation")


def test_a_replay_answers_its_replay_id_and_the_step_it_skipped_with_the_output_it_reused(
    api: Api, tenant_id: str
) -> None:
    message_id = post_message(api, tenant_id)
    report(api, tenant_id, execution("run-1", message_id, mail_fails_for_good=True))
    replay_id, crm_key = str(uuid4()), f"{message_id}/create-crm-record"
    mail = {"executionId": "run-2", "stepId": "run-2-mail", "name": "send-email", "attempt": 1,
            "idempotencyKey": f"{message_id}/send-email"}  # fmt: skip
    report(
        api,
        tenant_id,
        [
            ("StepCompleted", {**mail, "output": {"sent": True}}),
            ("StepSkipped", {"executionId": "run-2", "stepId": "run-2-crm", "name": "create-crm-record",
                             "idempotencyKey": crm_key, "skippedFor": {"executionId": "run-1", "stepId": "run-1-crm"}}),
            ("ExecutionStarted", {"executionId": "run-2", "messageEventId": message_id, "replayId": replay_id}),
            ("StepStarted", {**mail, "input": {"to": "buyer@contoso.example"}}),
            ("ExecutionCompleted", {"executionId": "run-2"}),
        ],
    )  # fmt: skip
    route = "/tenants/{tenantId}/executions/{executionId}"
    trace = fits(api.get(f"tenants/{tenant_id}/executions/run-2"), route)
    assert (trace["status"], trace["replayId"], trace["replayOf"]) == ("succeeded", replay_id, None)
    # Listed in the order first reported: the email's completion came first.
    sent, skip = trace["steps"]
    assert skip == {
        "executionId": "run-2",
        "stepId": "run-2-crm",
        "name": "create-crm-record",
        "status": "skipped",
        "attempts": 1,
        "idempotencyKey": crm_key,
        "input": None,
        "output": {"recordId": "crm-7"},  # the output of the step it reused
        "inputEventId": None,
        "outputEventId": None,
        "error": None,
        "startedAt": None,
        "completedAt": skip["completedAt"],
        "attemptHistory": [
            {"attempt": 1, "status": "skipped", "startedAt": None, "completedAt": skip["completedAt"], "error": None}
        ],
        "skippedFor": {"executionId": "run-1", "stepId": "run-1-crm"},
    }
    assert (sent["status"], sent["skippedFor"]) == ("succeeded", None)
    original = fits(api.get(f"tenants/{tenant_id}/executions/run-1"), route)
    assert original["replayId"] is None and {s["skippedFor"] for s in original["steps"]} == {None}

    # The executions a replay produced; the steps of a key, the one that did the work first.
    listed = fits(api.get(f"tenants/{tenant_id}/executions", replayId=replay_id), "/tenants/{tenantId}/executions")
    assert [(e["executionId"], e["replayId"]) for e in listed["executions"]] == [("run-2", replay_id)]
    assert fits(
        api.get(f"tenants/{tenant_id}/executions", replayId=str(uuid4())), "/tenants/{tenantId}/executions"
    ) == {"executions": [], "continuation": None}
    assert_problem(api.get(f"tenants/{tenant_id}/executions", replayId="replay-1"), 400, field="replayId")
    steps = fits(api.get(f"tenants/{tenant_id}/steps", idempotencyKey=crm_key), "/tenants/{tenantId}/steps")
    assert [(s["stepId"], s["status"], s["output"]) for s in steps["steps"]] == [
        ("run-1-crm", "succeeded", {"recordId": "crm-7"}),
        ("run-2-crm", "skipped", {"recordId": "crm-7"}),
    ]
    runs = fits(
        api.get(f"tenants/{tenant_id}/messages/{message_id}/executions"),
        "/tenants/{tenantId}/messages/{eventId}/executions",
    )
    assert [(e["executionId"], e["replayId"]) for e in runs["executions"]] == [("run-1", None), ("run-2", replay_id)]
    message = fits(api.get(f"tenants/{tenant_id}/messages/{message_id}"), "/tenants/{tenantId}/messages/{eventId}")
    assert (message["status"], message["attempts"], message["latestExecutionId"]) == ("succeeded", 2, "run-2")

    # A skip that names no step it reused, or has no key; a replay id that is no UUID: listed, not placed.
    report(
        api,
        tenant_id,
        [
            ("StepSkipped", {"executionId": "run-2", "stepId": "s-x", "name": "n", "idempotencyKey": "k"}),
            ("StepSkipped", {"executionId": "run-2", "stepId": "s-y", "name": "n",
                             "skippedFor": {"executionId": "run-1", "stepId": "run-1-crm"}}),
            ("ExecutionStarted", {"executionId": "run-3", "replayId": "replay-1"}),
        ],
    )  # fmt: skip
    unplaced = fits(api.get(f"tenants/{tenant_id}/traces/unplaced"), "/tenants/{tenantId}/traces/unplaced")
    assert unplaced["count"] == 3 and {e["reason"] for e in unplaced["events"]} == {"invalid-member"}
    details = " ".join(e["detail"] for e in unplaced["events"])
    assert "skippedFor" in details and "idempotencyKey" in details and "replayId" in details
    assert len(fits(api.get(f"tenants/{tenant_id}/executions/run-2"), route)["steps"]) == 2
    assert_problem(api.get(f"tenants/{tenant_id}/executions/run-3"), 404)


def test_a_large_input_comes_back_whole_and_bad_trace_events_are_listed(api: Api, tenant_id: str) -> None:
    big = {"document": "x" * 100_000}
    report(
        api,
        tenant_id,
        [
            ("ExecutionStarted", {"executionId": "exec-big"}),
            ("StepStarted", {"executionId": "exec-big", "stepId": "up", "name": "upload", "attempt": 1, "input": big}),
            ("StepCompleted", {"executionId": "exec-big", "stepId": "up", "name": "upload", "attempt": 1}),
            ("StepCompleted", {"stepId": "no-execution", "name": "upload"}),
        ],
    )
    trace = fits(api.get(f"tenants/{tenant_id}/executions/exec-big"), "/tenants/{tenantId}/executions/{executionId}")
    [upload] = trace["steps"]
    assert upload["input"] == big and upload["inputEventId"] is not None and upload["output"] is None
    unplaced = fits(api.get(f"tenants/{tenant_id}/traces/unplaced"), "/tenants/{tenantId}/traces/unplaced")
    assert unplaced["count"] == 1 and unplaced["events"][0]["reason"] == "invalid-member"
    assert "executionId" in unplaced["events"][0]["detail"]


def test_bad_input_is_a_400_and_unknown_ids_a_404(api: Api, tenant_id: str) -> None:
    t = f"tenants/{tenant_id}"
    assert_problem(api.get(f"{t}/executions/never-reported"), 404, executionId="never-reported")
    missing = str(uuid4())
    assert_problem(api.get(f"{t}/messages/{missing}"), 404, eventId=missing)
    assert_problem(api.get(f"{t}/messages/{missing}/executions"), 404)
    assert_problem(api.get(f"{t}/messages/not-a-uuid"), 400, field="eventId")
    assert_problem(api.get(f"{t}/executions/a%01b"), 400, field="executionId")
    assert_problem(api.get(f"tenants/{random_tenant_id()}/executions/x"), 404)
    assert_problem(api.get(f"tenants/{random_tenant_id()}/metrics/failures"), 404)
    assert_problem(api.get(f"{t}/messages", status="lost"), 400, field="status")
    assert_problem(api.get(f"{t}/messages", eventType="StepStarted"), 400, field="eventType")
    assert_problem(api.get(f"{t}/executions", status="dead-lettered"), 400, field="status")
    assert_problem(api.get(f"{t}/executions", **{"from": "yesterday"}), 400, field="from")
    assert_problem(api.get(f"{t}/metrics/failures", granularity="week"), 400, field="granularity")
    assert_problem(api.get(f"{t}/steps"), 400, field="idempotencyKey")
    assert_problem(api.get(f"{t}/messages", continuation="forged.AAAAAAAAAAAAAAAAAAAAAA"), 400, field="continuation")
    assert_problem(api.get(f"{t}/executions", limit="0"), 400, field="limit")
    # A range that is empty is no error, only empty.
    empty = api.get(f"{t}/messages", **{"from": "2030-01-01T00:00:00Z", "to": "2020-01-01T00:00:00Z"})
    assert fits(empty, "/tenants/{tenantId}/messages") == {"messages": [], "continuation": None}
