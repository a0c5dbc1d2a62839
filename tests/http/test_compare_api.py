"""Compare runs over real HTTP (the local Functions host): a message whose first execution failed (the CRM
step succeeded, the email failed after 3 attempts) and whose replay skipped the CRM step and sent the email
answers the two side by side, steps paired by name whatever order each run reported them in, with what
differs, the durations and which rule chose each side; the same workflow's last good run stands in when the
message has none; named sides are checked; bad input is a 400 naming the parameter, unknown ids a 404, and
nothing to compare a 409."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote
from uuid import uuid4

from eventstore.query.compare import same_json
from tests.helpers import random_tenant_id
from tests.http.client import Api, Response, assert_problem, envelope, native
from tests.http.test_openapi import DOCUMENT, errors

WORKFLOW = "deal-won-workflow"
ROUTE = "/tenants/{tenantId}/messages/{eventId}/compare"
MAIL_DOWN = {"message": "mail answered 503", "statusCode": 503, "body": '{"retryAfter": 1}'}


def fits(answer: Response) -> Any:
    """The answer's JSON, checked against the document's 200 schema of the compare route."""
    assert answer.status == 200, answer.body
    schema = DOCUMENT["paths"][ROUTE]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    body = answer.json()
    assert not errors(body, schema), errors(body, schema)
    return body


def post_message(api: Api, tenant_id: str, instance: str, workflow: str = WORKFLOW) -> str:
    body = envelope(tenant_id, properties={"WorkflowInstanceId": instance, "WorkflowId": workflow})
    answer = api.post(f"tenants/{tenant_id}/messages", body)
    assert answer.status == 202, answer.body
    return str(answer.json()["eventId"])


def report(
    api: Api, tenant_id: str, instance: str, events: list[tuple[str, dict[str, Any]]], workflow: str = WORKFLOW
) -> int:
    """Trace events through the outcome route, one request each, in the order given; the last position."""
    position = 0
    for kind, payload in events:
        body = native(kind, json.dumps(payload).encode(), workflowId=workflow)
        answer = api.post(f"tenants/{tenant_id}/instances/{quote(instance, safe='')}/events", body)
        assert answer.status == 201, answer.body
        position = answer.json()["globalPositions"][-1]
    return position


def step(execution_id: str, name: str, step_id: str, attempt: int = 1, **extra: Any) -> dict[str, Any]:
    return {"executionId": execution_id, "stepId": step_id, "name": name, "attempt": attempt, **extra}


def ran(execution_id: str, name: str, step_id: str, given: Any, answered: Any) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("StepStarted", step(execution_id, name, step_id, input=given)),
        ("StepCompleted", step(execution_id, name, step_id, output=answered)),
    ]


def succeeded(execution_id: str, message_id: str, *steps: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    return [
        ("ExecutionStarted", {"executionId": execution_id, "messageEventId": message_id}),
        *(event for events in steps for event in events),
        ("ExecutionCompleted", {"executionId": execution_id}),
    ]


def failed_run(execution_id: str, message_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The CRM record is created; the email fails three times (503 with a body) and the run fails."""
    crm, mail, email = f"{execution_id}-crm", f"{execution_id}-mail", {"to": "buyer@contoso.example"}
    events = [
        ("ExecutionStarted", {"executionId": execution_id, "messageEventId": message_id}),
        *ran(execution_id, "create-crm-record", crm, {"dealId": "42"}, {"recordId": "crm-7"}),
    ]
    for attempt in (1, 2, 3):
        events += [
            ("StepStarted", step(execution_id, "send-email", mail, attempt, input=email)),
            ("StepFailed", step(execution_id, "send-email", mail, attempt, error=MAIL_DOWN)),
        ]
    return [*events, ("ExecutionFailed", {"executionId": execution_id, "error": {"message": "send-email failed"}})]


def duration(started: str | None, completed: str | None) -> int | None:
    """What durationMs must be, from the answer's own times."""
    if started is None or completed is None:
        return None
    elapsed = datetime.fromisoformat(completed) - datetime.fromisoformat(started)
    return None if elapsed < timedelta(0) else elapsed // timedelta(milliseconds=1)


def assert_durations(answer: dict[str, Any]) -> None:
    sides = [answer["left"], answer["right"]]
    sides += [pair[s] for pair in answer["steps"] for s in ("left", "right") if pair[s] is not None]
    for side in sides:
        assert side["durationMs"] == duration(side["startedAt"], side["completedAt"]), side


def test_a_failed_run_beside_the_replay_that_fixed_it(api: Api, tenant_id: str) -> None:
    message_id = post_message(api, tenant_id, "deal-42")
    report(api, tenant_id, "deal-42", failed_run("run-1", message_id))
    replay_id = str(uuid4())
    # The replay reports the email before the skip of the CRM step: its trace lists them in that order.
    position = report(
        api,
        tenant_id,
        "deal-42",
        [
            ("ExecutionStarted", {"executionId": "run-2", "messageEventId": message_id, "replayId": replay_id,
                                  "replayOf": "run-1"}),
            *ran("run-2", "send-email", "run-2-mail", {"to": "buyer@contoso.example"}, {"sent": True}),
            ("StepSkipped", step("run-2", "create-crm-record", "run-2-crm", idempotencyKey=f"{message_id}/crm",
                                 skippedFor={"executionId": "run-1", "stepId": "run-1-crm"})),
            ("ExecutionCompleted", {"executionId": "run-2"}),
        ],
    )  # fmt: skip
    trace = api.get(f"tenants/{tenant_id}/executions/run-2").json()
    assert [s["name"] for s in trace["steps"]] == ["send-email", "create-crm-record"]

    answer = fits(api.get(f"tenants/{tenant_id}/messages/{message_id}/compare", minPosition=str(position)))
    left, right = answer["left"], answer["right"]
    assert answer["messageEventId"] == message_id
    assert (left["executionId"], left["chosen"], left["status"], left["replayId"]) == (
        "run-1",
        "latest-failed",
        "failed",
        None,
    )
    assert left["error"] == {"message": "send-email failed", "statusCode": None, "body": None}
    assert (right["executionId"], right["chosen"], right["status"], right["replayId"], right["replayOf"]) == (
        "run-2",
        "latest-succeeded",
        "succeeded",
        replay_id,
        "run-1",
    )
    # Paired by name, in the failed run's order.
    crm, mail = answer["steps"]
    assert (crm["name"], crm["occurrence"], mail["name"], mail["occurrence"]) == (
        "create-crm-record",
        1,
        "send-email",
        1,
    )
    assert (crm["left"]["stepId"], crm["right"]["stepId"], mail["left"]["stepId"], mail["right"]["stepId"]) == (
        "run-1-crm",
        "run-2-crm",
        "run-1-mail",
        "run-2-mail",
    )
    # The CRM step: done in run 1, skipped by the replay, which reused its output.
    assert (crm["left"]["status"], crm["left"]["input"], crm["left"]["output"]) == (
        "succeeded",
        {"dealId": "42"},
        {"recordId": "crm-7"},
    )
    assert (crm["right"]["status"], crm["right"]["input"], crm["right"]["output"], crm["right"]["skippedFor"]) == (
        "skipped",
        None,
        {"recordId": "crm-7"},
        {"executionId": "run-1", "stepId": "run-1-crm"},
    )
    assert crm["differences"] == ["status", "input"]
    # The email: failed after 3 attempts with the destination's answer; sent at the first attempt of the replay.
    assert (mail["left"]["status"], mail["left"]["attempts"], mail["left"]["error"], mail["left"]["output"]) == (
        "failed",
        3,
        MAIL_DOWN,
        None,
    )
    assert (mail["right"]["status"], mail["right"]["attempts"], mail["right"]["error"], mail["right"]["output"]) == (
        "succeeded",
        1,
        None,
        {"sent": True},
    )
    assert mail["left"]["input"] == mail["right"]["input"] == {"to": "buyer@contoso.example"}
    assert mail["differences"] == ["status", "attempts", "output", "error"]
    assert_durations(answer)
    assert crm["right"]["durationMs"] is None  # a step only skipped never started
    assert left["durationMs"] is not None and right["durationMs"] is not None

    # Named sides: the same runs the other way round, each `given`.
    swapped = fits(api.get(f"tenants/{tenant_id}/messages/{message_id}/compare", left="run-2", right="run-1"))
    assert [(s["executionId"], s["chosen"]) for s in (swapped["left"], swapped["right"])] == [
        ("run-2", "given"),
        ("run-1", "given"),
    ]
    assert [(p["name"], p["left"]["stepId"], p["right"]["stepId"]) for p in swapped["steps"]] == [
        ("send-email", "run-2-mail", "run-1-mail"),
        ("create-crm-record", "run-2-crm", "run-1-crm"),
    ]
    # Only the left named: the right is still chosen by the rules.
    named = fits(api.get(f"tenants/{tenant_id}/messages/{message_id}/compare", left="run-1"))
    assert [(s["executionId"], s["chosen"]) for s in (named["left"], named["right"])] == [
        ("run-1", "given"),
        ("run-2", "latest-succeeded"),
    ]
    assert named["steps"] == answer["steps"]


def test_the_workflows_last_good_run_stands_in_and_unmatched_steps_stand_alone(api: Api, tenant_id: str) -> None:
    older, newer, broken = (post_message(api, tenant_id, f"deal-{n}") for n in (1, 2, 3))
    elsewhere = post_message(api, tenant_id, "claim-1", workflow="expense-claim")
    email = {"to": "buyer@contoso.example"}
    report(api, tenant_id, "deal-1", succeeded("good-1", older, ran("good-1", "create-crm-record", "g1-crm", {}, {})))
    # The latest good run of the workflow: the email twice (to the buyer, then a copy), and a Slack notice.
    report(
        api,
        tenant_id,
        "deal-2",
        succeeded(
            "good-2",
            newer,
            ran("good-2", "create-crm-record", "g2-crm", {"dealId": "7"}, {"recordId": "crm-9"}),
            ran("good-2", "send-email", "g2-mail", email, {"sent": True}),
            ran("good-2", "send-email", "g2-copy", {"to": "sales@contoso.example"}, {"sent": True}),
            ran("good-2", "notify-slack", "g2-slack", {"channel": "#deals"}, {"ok": True}),
        ),
    )
    report(api, tenant_id, "deal-3", failed_run("bad-3", broken))
    # A later good run of another workflow is never chosen.
    report(
        api,
        tenant_id,
        "claim-1",
        succeeded("claim-run", elsewhere, ran("claim-run", "approve", "c-approve", {}, {})),
        workflow="expense-claim",
    )

    answer = fits(api.get(f"tenants/{tenant_id}/messages/{broken}/compare"))
    assert [(s["executionId"], s["chosen"]) for s in (answer["left"], answer["right"])] == [
        ("bad-3", "latest-failed"),
        ("good-2", "workflow-latest-succeeded"),
    ]
    assert answer["right"]["messageEventId"] == newer
    pairs = [
        (p["name"], p["occurrence"], p["left"] and p["left"]["stepId"], p["right"] and p["right"]["stepId"])
        for p in answer["steps"]
    ]
    assert pairs == [
        ("create-crm-record", 1, "bad-3-crm", "g2-crm"),
        ("send-email", 1, "bad-3-mail", "g2-mail"),
        ("send-email", 2, None, "g2-copy"),
        ("notify-slack", 1, None, "g2-slack"),
    ]
    crm, mail, copy, slack = answer["steps"]
    assert crm["differences"] == ["input", "output"]  # same status and attempts, other deal
    assert mail["differences"] == ["status", "attempts", "output", "error"]
    assert copy["differences"] == slack["differences"] == ["status", "attempts", "input", "output", "error"]
    assert slack["right"]["output"] == {"ok": True}
    assert_durations(answer)

    # Named: a right of the same workflow is taken; one of another workflow, or a left of another message, not.
    given = fits(api.get(f"tenants/{tenant_id}/messages/{broken}/compare", left="bad-3", right="good-1"))
    assert [(s["executionId"], s["chosen"]) for s in (given["left"], given["right"])] == [
        ("bad-3", "given"),
        ("good-1", "given"),
    ]
    assert [(p["name"], p["right"] and p["right"]["stepId"]) for p in given["steps"]] == [
        ("create-crm-record", "g1-crm"),
        ("send-email", None),
    ]
    other = api.get(f"tenants/{tenant_id}/messages/{broken}/compare", right="claim-run")
    assert_problem(other, 409, type="urn:eventstore:problem:not-comparable", field="right", executionId="claim-run")
    foreign = api.get(f"tenants/{tenant_id}/messages/{broken}/compare", left="good-2")
    assert_problem(foreign, 409, type="urn:eventstore:problem:not-comparable", field="left", executionId="good-2")


def test_nothing_to_compare_unknown_ids_and_bad_input(api: Api, tenant_id: str) -> None:
    t = f"tenants/{tenant_id}"
    nothing = "urn:eventstore:problem:nothing-to-compare"
    # No execution at all; one that succeeded and none failed; one failed and its workflow never succeeded.
    quiet = post_message(api, tenant_id, "quiet")
    assert_problem(api.get(f"{t}/messages/{quiet}/compare"), 409, type=nothing, field="left")
    fine = post_message(api, tenant_id, "fine")
    report(api, tenant_id, "fine", succeeded("fine-1", fine))
    assert_problem(api.get(f"{t}/messages/{fine}/compare"), 409, type=nothing, field="left")
    lonely = post_message(api, tenant_id, "lonely", workflow="lonely-workflow")
    report(api, tenant_id, "lonely", failed_run("lonely-1", lonely), workflow="lonely-workflow")
    assert_problem(api.get(f"{t}/messages/{lonely}/compare"), 409, type=nothing, field="right")
    # Its one failed run named as the right leaves no failed run for the left; the same run on both sides.
    assert_problem(api.get(f"{t}/messages/{lonely}/compare", right="lonely-1"), 409, type=nothing, field="left")
    same = api.get(f"{t}/messages/{lonely}/compare", left="lonely-1", right="lonely-1")
    assert_problem(same, 409, type=nothing, field="right")
    # Named: it must be recorded for this tenant (404 naming the side).
    unknown = "urn:eventstore:problem:unknown-execution"
    answer = api.get(f"{t}/messages/{lonely}/compare", left="never-ran")
    assert_problem(answer, 404, type=unknown, field="left", executionId="never-ran")
    answer = api.get(f"{t}/messages/{lonely}/compare", right="never-ran")
    assert_problem(answer, 404, type=unknown, field="right", executionId="never-ran")
    # The message, the tenant.
    missing = str(uuid4())
    assert_problem(api.get(f"{t}/messages/{missing}/compare"), 404, type="urn:eventstore:problem:unknown-message")
    assert_problem(api.get(f"tenants/{random_tenant_id()}/messages/{missing}/compare"), 404)
    # Bad input, named as sent.
    assert_problem(api.get(f"{t}/messages/not-a-uuid/compare"), 400, field="eventId")
    assert_problem(api.get(f"{t}/messages/{lonely}/compare", left=""), 400, field="left")
    assert_problem(api.get(f"{t}/messages/{lonely}/compare", left="a\x01b"), 400, field="left")
    assert_problem(api.get(f"{t}/messages/{lonely}/compare", right="r" * 257), 400, field="right")
    assert_problem(api.get(f"{t}/messages/{lonely}/compare", minPosition="-1"), 400, field="minPosition")
    assert_problem(api.get(f"{t}/messages/{lonely}/compare", side="left"), 400, field="side")
    twice = api.request("GET", f"{t}/messages/{lonely}/compare?left=a&left=b")
    assert_problem(twice, 400, field="left")


def test_json_equality_is_by_value() -> None:
    assert same_json('{"a":1,"b":[true,null]}', '{"b":[true,null],"a":1.0}')
    assert same_json(None, "null") and not same_json(None, "{}")
    assert not same_json("true", "1") and not same_json("[1,2]", "[2,1]") and not same_json('{"a":1}', '{"a":"1"}')
    assert not same_json('{"a":1}', '{"a":1,"b":1}')
    deep = "[" * 500 + "1" + "]" * 500
    assert same_json(deep, deep.replace("1", "1.0")) and not same_json(deep, deep.replace("1", "2"))
