"""The deployment-wide failure report over real HTTP (the suite's local Functions host): executions reported
through the outcome routes are counted for their tenant, workflow and message type, exactly; the totals are
the sum of the tenants and of the series; the top lists are the workflows and message types that failed
most; a tenant whose failure-counts view is held by another runner, or stopped, is listed in `skipped` with
why while the rest still answers; the range has defaults and a limit, refused as a 400 naming the parameter.

The host is shared with the rest of the suite, so the deployment's figures are asserted on these tests' own
tenants (and on properties that hold whatever else the deployment holds)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from eventstore import EventStore
from eventstore.views import FAILURE_COUNTS
from tests.helpers import random_tenant_id
from tests.http.client import Api, Response, assert_problem, envelope, native
from tests.http.test_openapi import DOCUMENT, errors

ROUTE = "metrics/failures"
FIGURES = ("started", "succeeded", "failed", "deadLettered", "failureRate")


def fits(answer: Response) -> Any:
    """The answer's JSON, checked against the document's 200 schema of the route."""
    assert answer.status == 200, answer.body
    schema = DOCUMENT["paths"]["/" + ROUTE]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    body = answer.json()
    assert not errors(body, schema), errors(body, schema)
    return body


def onboarded(api: Api) -> str:
    tenant = random_tenant_id()
    assert api.request("PUT", f"tenants/{tenant}").status == 201
    return tenant


def run(api: Api, tenant_id: str, workflow: str, outcome: str, *, message: bool = True) -> None:
    """One execution of `workflow`, for a message (trigger `Submit`) unless not `message`, reported in one
    request: `outcome` succeeded, failed, dead-lettered or started (no end yet)."""
    instance = f"inst-{uuid4().hex[:8]}"
    message_id = None
    if message:
        body = envelope(tenant_id, properties={"WorkflowInstanceId": instance, "WorkflowId": workflow})
        answer = api.post(f"tenants/{tenant_id}/messages", body)
        assert answer.status == 202, answer.body
        message_id = answer.json()["eventId"]
    execution = f"exec-{uuid4().hex[:12]}"
    events = [("ExecutionStarted", {"executionId": execution, "messageEventId": message_id})]
    if outcome == "succeeded":
        events.append(("ExecutionCompleted", {"executionId": execution}))
    elif outcome in ("failed", "dead-lettered"):
        failure = {"executionId": execution, "error": {"message": "mail answered 503", "statusCode": 503}}
        events.append(("ExecutionFailed", {**failure, "deadLettered": outcome == "dead-lettered"}))
    body = b"[" + b",".join(native(k, json.dumps(p).encode(), workflowId=workflow) for k, p in events) + b"]"
    answer = api.post(f"tenants/{tenant_id}/instances/{instance}/events", body)
    assert answer.status == 201, answer.body


def figures(item: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(item[name] for name in FIGURES)


def summed(items: list[dict[str, Any]]) -> tuple[int, ...]:
    return tuple(sum(item[name] for item in items) for name in FIGURES[:4])


def assert_top(top: list[dict[str, Any]], mine: dict[Any, tuple[Any, ...]], key: str, tenant_id: str) -> None:
    """`top` ranks by failures, at most 10; each of `mine` is in it with exactly its figures, unless ten
    others of the deployment failed at least as often."""
    assert len(top) <= 10
    assert [t["failed"] for t in top] == sorted((t["failed"] for t in top), reverse=True)
    listed = {t[key]: figures(t) for t in top if t["tenantId"] == tenant_id}
    for name, expected in mine.items():
        if name in listed:
            assert listed[name] == expected, name
        else:
            assert len(top) == 10 and all(t["failed"] >= expected[2] for t in top), (name, top)


def test_the_deployment_report_counts_each_tenant_workflow_and_message_type(api: Api) -> None:
    tenant_id = onboarded(api)
    for outcome in ("succeeded", "succeeded", "succeeded", "failed", "dead-lettered", "started"):
        run(api, tenant_id, "wf-orders", outcome)
    run(api, tenant_id, "wf-mail", "failed", message=False)
    quiet = onboarded(api)  # nothing recorded: read, but not listed

    asked = datetime.now(UTC)
    report = fits(api.get(ROUTE, granularity="day"))
    assert report["granularity"] == "day"
    assert not {tenant_id, quiet} & {s["tenantId"] for s in report["skipped"]}
    mine = next(t for t in report["tenants"] if t["tenantId"] == tenant_id)
    assert figures(mine) == (7, 3, 3, 1, 0.5)
    assert quiet not in {t["tenantId"] for t in report["tenants"]}
    assert report["tenantsRead"] >= 2
    assert summed(report["tenants"]) == summed([report["totals"]]) == summed(report["buckets"])
    failed = [t["failed"] for t in report["tenants"]]
    assert failed == sorted(failed, reverse=True)
    assert_top(
        report["topWorkflows"], {"wf-orders": (6, 3, 2, 1, 0.4), "wf-mail": (1, 0, 1, 0, 1.0)}, "workflowId", tenant_id
    )
    assert_top(
        report["topMessageTypes"], {"Submit": (6, 3, 2, 1, 0.4), None: (1, 0, 1, 0, 1.0)}, "messageType", tenant_id
    )

    # The default range: the last 7 days, today included; every day in the series, empty ones too.
    starts = [datetime.fromisoformat(b["start"]) for b in report["buckets"]]
    assert starts == [starts[-1] - timedelta(days=6 - n) for n in range(7)]
    assert asked.replace(hour=0, minute=0, second=0, microsecond=0) <= starts[-1] <= datetime.now(UTC)
    assert datetime.fromisoformat(report["from"]) == starts[0]
    assert datetime.fromisoformat(report["to"]) == starts[-1] + timedelta(days=1)

    # Per hour: the last 24 hours by default, and an explicit range around now counts the same executions.
    hours = fits(api.get(ROUTE))
    assert hours["granularity"] == "hour" and len(hours["buckets"]) == 24
    now = datetime.now(UTC)
    around = {"from": (now - timedelta(hours=2)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    near = fits(api.get(ROUTE, granularity="hour", **around))
    assert len(near["buckets"]) in (3, 4)  # `to` on an hour's start or inside one
    assert figures(next(t for t in near["tenants"] if t["tenantId"] == tenant_id)) == (7, 3, 3, 1, 0.5)

    # Before anything was recorded: the tenant is not in the report.
    before = {"from": "2020-01-01T00:00:00Z", "to": "2020-01-08T00:00:00Z"}
    old = fits(api.get(ROUTE, granularity="day", **before))
    assert tenant_id not in {t["tenantId"] for t in old["tenants"]}
    assert len(old["buckets"]) == 7 and old["from"] == "2020-01-01T00:00:00Z" and old["to"] == "2020-01-08T00:00:00Z"


def test_a_tenant_whose_view_is_held_or_stopped_is_skipped_with_why(api: Api, store: EventStore) -> None:
    counted, held = onboarded(api), onboarded(api)
    run(api, counted, "wf", "failed")
    run(api, held, "wf", "succeeded")

    views = store.views(held)
    with views.session(FAILURE_COUNTS.name) as session:  # another runner holds the view
        assert session is not None
        report = fits(api.get(ROUTE, granularity="day"))
        [skipped] = [s for s in report["skipped"] if s["tenantId"] == held]
        assert "could not be brought up to date" in skipped["reason"]
        assert held not in {t["tenantId"] for t in report["tenants"]}
        assert figures(next(t for t in report["tenants"] if t["tenantId"] == counted)) == (1, 0, 1, 0, 1.0)

        # Stopped at an event it cannot apply (recorded as the runner records it): the reason says so.
        [first] = store.tenant(held).read_all(limit=1).events
        session.stop(first, "planted: cannot apply this event")
        report = fits(api.get(ROUTE, granularity="day"))
        [skipped] = [s for s in report["skipped"] if s["tenantId"] == held]
        assert "stopped at event" in skipped["reason"] and "planted: cannot apply this event" in skipped["reason"]
        assert str(first.event_id) in skipped["reason"]

    # Released: the view catches up (nothing to apply past the event) and the tenant is counted again.
    report = fits(api.get(ROUTE, granularity="day"))
    assert held not in {s["tenantId"] for s in report["skipped"]}
    assert figures(next(t for t in report["tenants"] if t["tenantId"] == held)) == (1, 1, 0, 0, 0.0)


def test_the_range_has_defaults_and_a_limit_and_bad_input_is_a_400_naming_the_parameter(api: Api) -> None:
    day = timedelta(days=1)
    start = datetime(2024, 1, 1, tzinfo=UTC)

    def between(granularity: str, length: timedelta) -> Response:
        return api.get(
            ROUTE, granularity=granularity, **{"from": start.isoformat(), "to": (start + length).isoformat()}
        )

    assert len(fits(between("hour", 31 * day))["buckets"]) == 31 * 24
    assert_problem(between("hour", 31 * day + timedelta(hours=1)), 400, field="from")
    assert len(fits(between("day", 366 * day))["buckets"]) == 366
    assert_problem(between("day", 367 * day), 400, field="from")
    # Only `from`: up to now, so a `from` long ago is too long a range; only `to`: the default span before it.
    assert_problem(api.get(ROUTE, **{"from": "2020-01-01T00:00:00Z"}), 400, field="from")
    only_to = fits(api.get(ROUTE, granularity="day", to="2024-03-10T12:00:00+02:00"))
    assert (only_to["from"], only_to["to"]) == ("2024-03-04T00:00:00Z", "2024-03-11T00:00:00Z")
    # `to` not after `from`: an empty report, not an error (as the other ranges of the API).
    empty = fits(api.get(ROUTE, **{"from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"}))
    assert empty["buckets"] == [] and empty["tenants"] == [] and empty["totals"]["failureRate"] is None
    # The ends of time are ranges like any other.
    assert fits(api.get(ROUTE, to="0001-01-01T00:30:00+05:00"))["buckets"] == []
    assert fits(api.get(ROUTE, **{"from": "9999-12-31T23:30:00-05:00"}))["buckets"] == []
    assert len(fits(api.get(ROUTE, **{"from": "9999-12-31T20:00:00Z", "to": "9999-12-31T23:59:59Z"}))["buckets"]) == 4

    assert_problem(api.get(ROUTE, granularity="week"), 400, field="granularity")
    assert_problem(api.get(ROUTE, **{"from": "yesterday"}), 400, field="from")
    assert_problem(api.get(ROUTE, to="2024-01-01"), 400, field="to")
    assert_problem(api.get(ROUTE, tenantId=random_tenant_id()), 400, field="tenantId")
