"""Alerts delivered to real local receivers (PagerDuty Events v2, a Slack incoming webhook, SMTP): one
trigger and one resolve per incident whatever evaluates and however often, a restart between them changing
nothing; each dead letter and each faulted instance posted once; many at once as one summary; the weekly
summary sent once even when its timer runs twice at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from pydantic import SecretStr

from eventstore import EventStore, NewEvent, Settings, instance_stream_id
from eventstore.alerts import failure_rate
from eventstore.alerts.config import channels_from_settings
from eventstore.alerts.runner import AlertRun, AlertRunner
from eventstore.alerts.weekly_send import send_weekly
from eventstore.store import PendingWork
from eventstore_local.standins.pagerduty import DEFAULT_ROUTING_KEY, PagerDutyStandIn
from eventstore_local.standins.slack import SlackWebhookStandIn
from eventstore_local.standins.smtp import SmtpStandIn
from tests.alerts.test_failure_rate import WORKFLOW, _runs
from tests.helpers import random_tenant_id, settle


@pytest.fixture(scope="module")
def pagerduty() -> Iterator[PagerDutyStandIn]:
    with PagerDutyStandIn() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackWebhookStandIn]:
    # Slack's own pace (1 post a second) would make the summary test wait minutes: a faster webhook here;
    # the pace itself is the channel tests' business.
    with SlackWebhookStandIn(rate_per_second=50.0) as receiver:
        yield receiver


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpStandIn]:
    with SmtpStandIn() as receiver:
        yield receiver


@pytest.fixture
def alert_settings(
    settings: Settings, pagerduty: PagerDutyStandIn, slack: SlackWebhookStandIn, smtp: SmtpStandIn
) -> Settings:
    return settings.model_copy(
        update={
            "pagerduty_routing_key": SecretStr(DEFAULT_ROUTING_KEY),
            "pagerduty_url": pagerduty.base_url,
            "slack_webhook_url": SecretStr(slack.url),
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_starttls": False,
            "alert_email_from": "eventstore@contoso.example",
            "alert_email_to": "ops@contoso.example, owner@contoso.example",
            "public_url": "https://eventstore.contoso.example",
        }
    )


@pytest.fixture
def tenant_id(store: EventStore) -> str:
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    return tenant_id


def _settings(base: Settings, **changes: Any) -> Settings:
    return base.model_copy(update={k: v for k, v in changes.items()})


def _runner(store: EventStore, settings: Settings) -> AlertRunner:
    """A fresh evaluator, as after a restart of the app: nothing but the database carries over."""
    channels = channels_from_settings(settings)
    return AlertRunner(store, settings, PendingWork(store.pools, settings.full_pass_seconds), channels)


def _run(store: EventStore, settings: Settings, tenant_id: str) -> AlertRun:
    settle(store, store.tenant(tenant_id))
    result = AlertRun()
    _runner(store, settings).run_tenant(tenant_id, result)
    return result


def _pages(pagerduty: PagerDutyStandIn, tenant_id: str) -> list[tuple[str, str]]:
    return [(e.action, e.dedup_key) for e in pagerduty.accepted if f"/{tenant_id}/" in (e.dedup_key or "")]


def _posts(slack: SlackWebhookStandIn, tenant_id: str) -> list[str]:
    return [p.text or "" for p in slack.accepted if tenant_id in json.dumps(p.blocks or []) + (p.text or "")]


def test_an_incident_pages_once_and_resolves_once_across_restarts(
    store: EventStore, alert_settings: Settings, tenant_id: str, pagerduty: PagerDutyStandIn, slack: SlackWebhookStandIn
) -> None:
    key = failure_rate.dedup_key(tenant_id, WORKFLOW)
    _runs(store, tenant_id, succeeded=90, failed=10)
    assert _run(store, alert_settings, tenant_id).opened == [key]
    [page] = [e for e in pagerduty.accepted if e.dedup_key == key]
    payload = page.event["payload"]
    assert (page.action, payload["severity"], payload["source"]) == ("trigger", "error", f"eventstore/{tenant_id}")
    assert payload["custom_details"]["failed"] == 10 and payload["custom_details"]["executions"] == 100
    assert [link["text"] for link in page.event["links"]] == ["The failures", "Replay the failed messages"]
    [post] = _posts(slack, tenant_id)
    assert "10 of 100 executions failed" in post

    for _ in range(3):  # the next minutes, each by a fresh evaluator (a restart): nothing more goes out
        assert _run(store, alert_settings, tenant_id).sent == 0
    assert _pages(pagerduty, tenant_id) == [("trigger", key)]
    assert tenant_id in dict(store.registry.alerting())  # visited every minute while open

    _runs(store, tenant_id, succeeded=300, failed=0)
    assert _run(store, alert_settings, tenant_id).resolved == [key]
    assert _run(store, alert_settings, tenant_id).sent == 0
    assert _pages(pagerduty, tenant_id) == [("trigger", key), ("resolve", key)]
    assert len(_posts(slack, tenant_id)) == 2
    assert tenant_id not in dict(store.registry.alerting())  # quiet again: no longer visited for nothing


def test_two_evaluators_at_once_send_one_trigger(
    store: EventStore, alert_settings: Settings, tenant_id: str, pagerduty: PagerDutyStandIn
) -> None:
    _runs(store, tenant_id, succeeded=40, failed=10)
    settle(store, store.tenant(tenant_id))
    runners = [_runner(store, alert_settings) for _ in range(3)]
    barrier = threading.Barrier(len(runners))

    def evaluate(runner: AlertRunner) -> None:
        barrier.wait()
        runner.run_tenant(tenant_id, AlertRun())

    threads = [threading.Thread(target=evaluate, args=(r,)) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _pages(pagerduty, tenant_id) == [("trigger", failure_rate.dedup_key(tenant_id, WORKFLOW))]


def test_pagerduty_down_holds_the_page_and_sends_it_later_once(
    store: EventStore, alert_settings: Settings, tenant_id: str, pagerduty: PagerDutyStandIn
) -> None:
    _runs(store, tenant_id, succeeded=40, failed=10)
    pagerduty.fail_next(20, status=503)
    first = _run(store, alert_settings, tenant_id)
    assert first.opened and first.sent <= 1 and _pages(pagerduty, tenant_id) == []
    [(row, error)] = store.alerts(tenant_id).outbox("pagerduty")
    assert row.state == "pending" and error is not None and "503" in error
    assert _run(store, alert_settings, tenant_id).sent == 0  # not due yet: nothing is tried
    pagerduty.fail_next(0)
    _due_now(store, tenant_id)  # the backoff passed
    assert _run(store, alert_settings, tenant_id).sent == 1
    assert _pages(pagerduty, tenant_id) == [("trigger", failure_rate.dedup_key(tenant_id, WORKFLOW))]
    [(row, error)] = store.alerts(tenant_id).outbox("pagerduty")
    assert (row.state, row.attempts, error) == ("sent", 2, None)


def _due_now(store: EventStore, tenant_id: str) -> None:
    import psycopg
    from psycopg import sql

    schema = store.tenant(tenant_id).placement.schema_name
    with psycopg.connect(store.settings.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("UPDATE {} SET next_attempt_at = now()").format(sql.Identifier(schema, "alert_outbox")))


def _dead_letters(store: EventStore, tenant_id: str, count: int) -> None:
    tenant = store.tenant(tenant_id)
    for n in range(count):
        execution = f"dl-{uuid4().hex[:12]}"
        failed = {"executionId": execution, "error": {"message": f"gave up on order {n}"}, "deadLettered": True}
        events = [
            NewEvent(event_id=uuid4(), event_type=kind, payload=json.dumps(body).encode(), workflow_id=WORKFLOW)
            for kind, body in (("ExecutionStarted", {"executionId": execution}), ("ExecutionFailed", failed))
        ]
        tenant.append(instance_stream_id(f"order-{n}"), events)


def test_each_dead_letter_is_posted_once_and_a_burst_as_one_summary(
    store: EventStore, alert_settings: Settings, tenant_id: str, slack: SlackWebhookStandIn, store_tenant: str
) -> None:
    quiet = _settings(alert_settings, pagerduty_routing_key=None, alert_min_executions=10_000)
    _dead_letters(store, tenant_id, 5)
    _run(store, quiet, tenant_id)
    _run(store, quiet, tenant_id)
    posts = _posts(slack, tenant_id)
    assert len(posts) == 5 and all(p.startswith("Dead letter: a ") for p in posts)
    assert all(f"workflow {WORKFLOW} exhausted its retries" in p for p in posts)

    _dead_letters(store, store_tenant, 500)
    _run(store, quiet, store_tenant)
    [summary] = _posts(slack, store_tenant)
    assert summary.startswith(f"500 notices for tenant {store_tenant}: 500 dead-letter")
    rows = store.alerts(store_tenant).outbox("slack", limit=1000)
    assert len(rows) == 500 and {row.state for row, _ in rows} == {"sent"}


@pytest.fixture
def store_tenant(store: EventStore) -> str:
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    return tenant_id


def test_a_faulted_instance_is_posted_once(
    store: EventStore, alert_settings: Settings, tenant_id: str, slack: SlackWebhookStandIn
) -> None:
    quiet = _settings(alert_settings, pagerduty_routing_key=None)
    tenant = store.tenant(tenant_id)
    created = b'{"newState": "waiting", "newStatus": "running", "workflowId": "claims"}'
    fault = b'{"newState": "waiting", "errorMessage": "approver service 500"}'
    tenant.append(
        instance_stream_id("claim-1"),
        [
            NewEvent(event_id=uuid4(), event_type="InstanceCreated", payload=created, workflow_id="claims"),
            NewEvent(event_id=uuid4(), event_type="TransitionFailed", payload=fault, workflow_id="claims"),
        ],
    )
    _run(store, quiet, tenant_id)
    _run(store, quiet, tenant_id)
    [post] = _posts(slack, tenant_id)
    assert post == f"Instance claim-1 of workflow claims faulted (tenant {tenant_id})"


def test_the_weekly_summary_is_sent_once_when_its_timer_runs_twice_at_once(
    store: EventStore, alert_settings: Settings, smtp: SmtpStandIn
) -> None:
    now = datetime(2031, 3, 10, 8, 0, tzinfo=UTC)  # a Monday far from any other test's week
    sent: list[bool] = []
    barrier = threading.Barrier(2)

    def timer() -> None:
        channels = channels_from_settings(alert_settings)
        assert channels.email is not None
        barrier.wait()
        sent.append(send_weekly(store, alert_settings, channels.email, now))

    before = len(smtp.messages)
    threads = [threading.Thread(target=timer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(sent) == [False, True]
    [email] = smtp.messages[before:]
    assert list(email.rcpt_tos) == ["ops@contoso.example", "owner@contoso.example"]
    assert "2031-03-03" in email.subject and email.html and "<svg" in email.html and email.text
    channels = channels_from_settings(alert_settings)
    assert channels.email is not None and not send_weekly(store, alert_settings, channels.email, now)
    assert len(smtp.messages) == before + 1


def test_an_error_jsonb_cannot_hold_and_a_fault_already_over_are_still_posted(
    store: EventStore, alert_settings: Settings, tenant_id: str, slack: SlackWebhookStandIn
) -> None:
    quiet = _settings(alert_settings, pagerduty_routing_key=None)
    tenant = store.tenant(tenant_id)
    execution = f"dl-{uuid4().hex[:12]}"
    # A NUL in the error: the event keeps it; PostgreSQL's jsonb cannot, so the notice must do without a cast.
    failed = (
        b'{"executionId": "%s", "error": {"message": "bad \\u0000 byte"}, "deadLettered": true}' % execution.encode()
    )
    started = b'{"executionId": "%s"}' % execution.encode()
    tenant.append(
        instance_stream_id("order-nul"),
        [
            NewEvent(event_id=uuid4(), event_type="ExecutionStarted", payload=started, workflow_id=WORKFLOW),
            NewEvent(event_id=uuid4(), event_type="ExecutionFailed", payload=failed, workflow_id=WORKFLOW),
        ],
    )
    created = b'{"newState": "waiting", "newStatus": "running", "workflowId": "claims"}'
    fault = b'{"newState": "waiting", "errorMessage": "approver service 500"}'
    back = b'{"newState": "approved", "newStatus": "running"}'
    tenant.append(
        instance_stream_id("claim-2"),
        [
            NewEvent(event_id=uuid4(), event_type=kind, payload=body, workflow_id="claims")
            for kind, body in (("InstanceCreated", created), ("TransitionFailed", fault), ("TransitionCompleted", back))
        ],
    )
    result = _run(store, quiet, tenant_id)
    assert result.errors == []
    posts = _posts(slack, tenant_id)
    assert any(p.startswith("Dead letter: a ") for p in posts), posts
    assert f"Instance claim-2 of workflow claims faulted (tenant {tenant_id})" in posts


def test_the_weekly_summary_waits_for_its_hour_on_monday(store: EventStore, alert_settings: Settings) -> None:
    channels = channels_from_settings(alert_settings)
    assert channels.email is not None
    early = datetime(2031, 3, 17, 7, 59, tzinfo=UTC)  # Monday, before 08:00
    assert not send_weekly(store, alert_settings, channels.email, early)
    assert [w for w, _, _ in store.alert_reports.sent() if w.isoformat() == "2031-03-10"] == []
