"""The failure-rate rule on real executions: 10 failures in 100 runs of a workflow within the hour open one
incident and queue one trigger, whoever evaluates and however often (a restart, two evaluators at once);
300 successes later the incident resolves with one resolve queued; volume under the minimum never pages."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from eventstore import EventStore, NewEvent, Settings, instance_stream_id
from eventstore.alerts import failure_rate
from eventstore.query import up_to_date
from eventstore.store import TenantAlerts
from eventstore.views import EXECUTIONS
from tests.helpers import random_tenant_id, settle

WORKFLOW = "deal-won-workflow"


@pytest.fixture
def alert_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "pagerduty_routing_key": "R" * 32,
            "slack_webhook_url": "http://127.0.0.1:9/slack",
            "public_url": "https://eventstore.contoso.example",
        }
    )


@pytest.fixture
def tenant_id(store: EventStore) -> Iterator[str]:
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    yield tenant_id


def _runs(store: EventStore, tenant_id: str, succeeded: int, failed: int, workflow: str = WORKFLOW) -> None:
    """Executions of `workflow` that ended: `failed` of them with a 503 at the email step."""
    tenant = store.tenant(tenant_id)
    for n in range(succeeded + failed):
        execution = f"exec-{uuid4().hex[:12]}"
        instance = f"deal-{n % 7}"
        events = [_event("ExecutionStarted", {"executionId": execution}, workflow, instance)]
        if n < failed:
            error = {"message": "mail service down", "statusCode": 503, "body": None}
            events.append(_event("ExecutionFailed", {"executionId": execution, "error": error}, workflow, instance))
        else:
            events.append(_event("ExecutionCompleted", {"executionId": execution}, workflow, instance))
        tenant.append(instance_stream_id(instance), events)


def _event(kind: str, payload: dict[str, Any], workflow: str, instance: str) -> NewEvent:
    return NewEvent(
        event_id=uuid4(),
        event_type=kind,
        payload=json.dumps(payload).encode(),
        workflow_id=workflow,
        workflow_instance_id=instance,
    )


def _evaluate(store: EventStore, settings: Settings, tenant_id: str, now: datetime | None = None) -> Any:
    settle(store, store.tenant(tenant_id))
    up_to_date(store, tenant_id, EXECUTIONS)
    return failure_rate.evaluate(store.alerts(tenant_id), settings, now or datetime.now(UTC))


def _outbox(alerts: TenantAlerts, channel: str) -> list[tuple[str, dict[str, Any]]]:
    return [(row.kind, row.body) for row, _ in alerts.outbox(channel)]


def test_ten_failures_in_a_hundred_runs_page_once_and_three_hundred_successes_resolve_once(
    store: EventStore, alert_settings: Settings, tenant_id: str
) -> None:
    _runs(store, tenant_id, succeeded=90, failed=10)
    first = _evaluate(store, alert_settings, tenant_id)
    key = failure_rate.dedup_key(tenant_id, WORKFLOW)
    assert (first.opened, first.resolved, first.open) == ([key], [], 1)
    alerts = store.alerts(tenant_id)
    [(kind, trigger)] = _outbox(alerts, "pagerduty")
    assert kind == "trigger" and trigger["dedup_key"] == key and trigger["severity"] == "error"
    assert trigger["summary"].startswith(f"Workflow {WORKFLOW}: 10 of 100 executions failed in the last 60 min (10%")
    details = trigger["custom_details"]
    assert (details["executions"], details["failed"], details["failureRate"]) == (100, 10, 0.1)
    hrefs = [link["href"] for link in trigger["links"]]
    assert hrefs[0].startswith(f"https://eventstore.contoso.example/api/console/tenants/{tenant_id}/failures?")
    assert "status=failed" in hrefs[1] and f"workflow={WORKFLOW}" in hrefs[1]
    assert [k for k, _ in _outbox(alerts, "slack")] == ["failure-rate"]

    # Evaluated again (the next minute, or a host restarted with a fresh evaluator): nothing new.
    again = _evaluate(store, alert_settings, tenant_id)
    assert (again.opened, again.open) == ([], 1)
    assert len(_outbox(alerts, "pagerduty")) == 1
    [incident] = alerts.incidents("open")
    assert incident.figures["failed"] == 10

    _runs(store, tenant_id, succeeded=300, failed=0)  # 10 of 400: 2.5 %
    resolved = _evaluate(store, alert_settings, tenant_id)
    assert (resolved.resolved, resolved.open) == ([key], 0)
    assert [k for k, _ in _outbox(alerts, "pagerduty")] == ["trigger", "resolve"]
    assert _outbox(alerts, "pagerduty")[1][1] == {"action": "resolve", "dedup_key": key}
    assert _evaluate(store, alert_settings, tenant_id).resolved == []
    assert len(_outbox(alerts, "pagerduty")) == 2


def test_two_evaluators_at_once_queue_one_trigger(store: EventStore, alert_settings: Settings, tenant_id: str) -> None:
    _runs(store, tenant_id, succeeded=40, failed=10)
    settle(store, store.tenant(tenant_id))
    up_to_date(store, tenant_id, EXECUTIONS)
    now = datetime.now(UTC)
    opened: list[list[str]] = []
    barrier = threading.Barrier(4)

    def evaluate() -> None:
        barrier.wait()
        opened.append(failure_rate.evaluate(store.alerts(tenant_id), alert_settings, now).opened)

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(o) for o in opened) == [0, 0, 0, 1]
    assert [k for k, _ in _outbox(store.alerts(tenant_id), "pagerduty")] == ["trigger"]


def test_under_the_minimum_volume_or_at_the_threshold_nothing_pages(
    store: EventStore, alert_settings: Settings, tenant_id: str
) -> None:
    _runs(store, tenant_id, succeeded=1, failed=1)  # 50 %, but 2 runs
    _runs(store, tenant_id, succeeded=95, failed=5, workflow="other")  # exactly 5 %: not over it
    evaluation = _evaluate(store, alert_settings, tenant_id)
    assert (evaluation.opened, evaluation.open) == ([], 0)
    assert _outbox(store.alerts(tenant_id), "pagerduty") == []


def test_failures_that_age_out_of_the_window_resolve_the_incident(
    store: EventStore, alert_settings: Settings, tenant_id: str
) -> None:
    _runs(store, tenant_id, succeeded=20, failed=10)
    assert _evaluate(store, alert_settings, tenant_id).open == 1
    later = datetime.now(UTC) + timedelta(minutes=61)  # no run since: the window is empty
    evaluation = _evaluate(store, alert_settings, tenant_id, later)
    assert (evaluation.resolved, evaluation.open) == ([failure_rate.dedup_key(tenant_id, WORKFLOW)], 0)
    # A new burst later is a new incident: paged again under the same key.
    _runs(store, tenant_id, succeeded=20, failed=10)
    assert _evaluate(store, alert_settings, tenant_id).opened == [failure_rate.dedup_key(tenant_id, WORKFLOW)]
    kinds = [k for k, _ in _outbox(store.alerts(tenant_id), "pagerduty")]
    assert kinds == ["trigger", "resolve", "trigger"]
