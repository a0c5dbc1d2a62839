"""The weekly summary on real PostgreSQL: a week of messages and executions recorded through the store
(stamped at chosen times), the views run up to date, then the tenant's summary (counts, success rate, a burst
of 50 failures with different ids as one category, daily failure rates, faulted instances, dead letters,
the trend against the week before) and the email rendered from it (both parts, the chart, the links)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from eventstore import NewEvent, Settings, instance_stream_id
from eventstore.alerts import weekly
from eventstore.alerts.categories import category_of
from eventstore.store import AUDIT_STREAM_ID
from eventstore.views import EXECUTIONS, FAILURE_COUNTS, INSTANCES, MESSAGES
from eventstore.views.summary import tenant_summary
from tests.views.test_traces import Timed, message, run_views, timed_store

WEEK = datetime(2026, 11, 9, tzinfo=UTC)
"""A Monday: the week reported is [WEEK, WEEK + 7 days), compared with the one before."""
DEALS = "deal-won-workflow"
ORDERS = "order-workflow"
ODD_TYPE = "<b>odd</b> & type"
ALL_VIEWS = (INSTANCES, MESSAGES, EXECUTIONS, FAILURE_COUNTS)


@pytest.fixture(scope="module")
def timed(settings: Settings) -> Iterator[Timed]:
    yield from timed_store(settings)


class Week:
    """Records messages and their executions, one append per message and per execution."""

    def __init__(self, timed: Timed, tenant_id: str) -> None:
        self.timed, self.tenant = timed, timed.store.tenant(tenant_id)
        self.runs = 0

    def _append(self, stream: str, at: datetime, events: list[NewEvent]) -> None:
        self.timed.clock.now = at
        self.tenant.append(stream, events)

    def message(self, at: datetime, trigger_name: str, instance: str) -> UUID:
        event = message(trigger_name=trigger_name, instance=instance).event  # its time is `at`, not the builder's
        self._append(AUDIT_STREAM_ID, at, [event])
        return event.event_id

    def run(
        self,
        at: datetime,
        *,
        trigger_name: str = "deal.won",
        workflow: str = DEALS,
        fail_step: str | None = None,
        error: dict[str, Any] | None = None,
        dead_letter: bool = False,
    ) -> str:
        """A message and one execution of it a minute later: its steps succeed, or `fail_step` fails with
        `error` (no step at all when `fail_step` is None and `error` is given)."""
        self.runs += 1
        instance = f"deal-{self.runs}"
        message_id = self.message(at, trigger_name, instance)
        execution = f"exec-{uuid4().hex[:16]}"
        started = {"executionId": execution, "messageEventId": str(message_id)}
        events = [self._trace("ExecutionStarted", started, workflow)]
        for name in ("create-crm-record", "send-email"):
            if error is not None and fail_step is None:
                break
            step = {"executionId": execution, "stepId": str(uuid4()), "name": name, "attempt": 1}
            events.append(self._trace("StepStarted", {**step, "input": {"n": self.runs}}, workflow))
            if name == fail_step:
                events.append(self._trace("StepFailed", {**step, "error": error}, workflow))
                break
            events.append(self._trace("StepCompleted", {**step, "output": {"ok": True}}, workflow))
        if error is None:
            events.append(self._trace("ExecutionCompleted", {"executionId": execution}, workflow))
        else:
            failed = {"executionId": execution, "error": error, "deadLettered": dead_letter}
            events.append(self._trace("ExecutionFailed", failed, workflow))
        self._append(instance_stream_id(instance), at + timedelta(minutes=1), events)
        return execution

    def fault(self, at: datetime, instance: str, error: str) -> None:
        event = self._trace("TransitionFailed", {"workflowId": DEALS, "error": error}, DEALS)
        self._append(instance_stream_id(instance), at, [event])

    @staticmethod
    def _trace(kind: str, payload: dict[str, Any], workflow: str) -> NewEvent:
        return NewEvent(event_id=uuid4(), event_type=kind, payload=json.dumps(payload).encode(), workflow_id=workflow)


def day(n: int, hour: int = 10) -> datetime:
    return WEEK + timedelta(days=n, hours=hour)


def mail_503(n: int) -> dict[str, Any]:
    return {
        "message": f"mail answered 503 Service Unavailable for deal {n} (request {uuid4()}, to b{n}@contoso.example)",
        "statusCode": 503,
        "body": json.dumps({"retryAfter": n}),
    }


@pytest.fixture(scope="module")
def recorded(timed: Timed) -> tuple[str, dict[str, Any]]:
    """The week and the week before, recorded once for the module's tests."""
    tenant_id = timed.tenant()
    week = Week(timed, tenant_id)
    facts: dict[str, Any] = {}
    for n in range(10):  # the week before: 10 messages, all processed
        week.run(day(-7 + n % 5))
    # Monday: a burst of 50 mail failures (503, every one with other ids) among 100 runs: 50 %.
    for n in range(50):
        week.run(day(0, 9) + timedelta(seconds=n), fail_step="send-email", error=mail_503(n))
        week.run(day(0, 11) + timedelta(seconds=n))
    # Tuesday: 2 CRM failures (500) in 40 runs: 5 %, on the threshold.
    for n in range(38):
        week.run(day(1) + timedelta(seconds=n))
    facts["crm"] = [
        week.run(
            day(1, 15) + timedelta(minutes=n),
            fail_step="create-crm-record",
            error={"message": f"CRM answered 500 for record {1000 + n}", "statusCode": 500, "body": "oops"},
        )
        for n in range(2)
    ]
    week.fault(day(1, 16), "deal-1", "The CRM step failed for good: <script>alert(1)</script>")
    # Wednesday: 20 runs that succeed.
    for n in range(20):
        week.run(day(2) + timedelta(seconds=n))
    # Saturday: an order that times out outside any step and is dead-lettered; a message type to escape.
    facts["dead"] = week.run(
        day(5),
        trigger_name="order.paid",
        workflow=ORDERS,
        error={"message": "TimeoutError: no answer in 30 s", "statusCode": None, "body": None},
        dead_letter=True,
    )
    week.run(day(5, 12), trigger_name=ODD_TYPE, fail_step="send-email", error=mail_503(99))
    # The next Monday is not in the week.
    week.run(day(7, 1), fail_step="send-email", error=mail_503(7))
    run_views(timed.store, tenant_id, views=ALL_VIEWS)
    return tenant_id, facts


def test_the_summary_counts_groups_and_rates(timed: Timed, recorded: tuple[str, dict[str, Any]]) -> None:
    tenant_id, facts = recorded
    summary = weekly.summarise(timed.store.views(tenant_id), WEEK, WEEK + timedelta(days=7))
    assert summary.messages_received == 100 + 40 + 20 + 2
    totals = summary.totals
    assert (totals.succeeded, totals.failed, totals.dead_lettered) == (50 + 38 + 20, 50 + 2 + 2, 1)
    assert summary.success_rate == pytest.approx(108 / 162)

    # The burst is one category, however many ids its messages carried.
    top = summary.groups[0]
    assert (top.count, top.message_type, top.workflow_id, top.step, top.error_class) == (
        50,
        "deal.won",
        DEALS,
        "send-email",
        "http 503",
    )
    assert top.message == "mail answered <n> service unavailable for deal <n> (request <uuid>, to <email>)"
    assert top.example_message_event_id is not None
    crm = summary.groups[1]
    assert (crm.count, crm.step, crm.error_class) == (2, "create-crm-record", "http 500")
    assert crm.example_execution_id == facts["crm"][-1]  # the latest of the group
    singles = {(g.message_type, g.step, g.error_class, g.dead_lettered) for g in summary.groups[2:]}
    assert singles == {("order.paid", None, "TimeoutError", 1), (ODD_TYPE, "send-email", "http 503", 0)}
    assert summary.group_count == 4 and not summary.failures_truncated and summary.failures_read == 54

    rates = [d.counts.failure_rate for d in summary.days]
    assert summary.days[0].day.isoformat() == "2026-11-09" and len(rates) == 7
    assert rates == [0.5, 0.05, 0.0, None, None, 1.0, None]

    by_type = {b.key: (b.counts.failed, b.counts.ended) for b in summary.by_message_type}
    assert by_type == {"deal.won": (52, 160), "order.paid": (1, 1), ODD_TYPE: (1, 1)}
    assert summary.by_message_type[0].key == "deal.won"  # most failures first
    by_workflow = {b.key: (b.counts.failed, b.counts.ended) for b in summary.by_workflow}
    assert by_workflow == {DEALS: (53, 161), ORDERS: (1, 1)}

    assert summary.faulted_count == 1 and summary.faulted[0].instance_id == "deal-1"
    assert summary.dead_letter_count == 1
    [dead] = summary.dead_letters
    assert (dead.message_type, dead.latest_execution_id) == ("order.paid", facts["dead"])

    before = weekly.summarise(timed.store.views(tenant_id), WEEK - timedelta(days=7), WEEK)
    assert (before.messages_received, before.totals.succeeded, before.totals.failed) == (10, 10, 0)
    assert before.success_rate == 1.0 and before.groups == [] and before.faulted_count == 0


def test_past_the_bound_the_groups_say_they_are_truncated(timed: Timed, recorded: tuple[str, dict[str, Any]]) -> None:
    tenant_id, _ = recorded
    views = timed.store.views(tenant_id)
    summary = tenant_summary(views, WEEK, WEEK + timedelta(days=7), categorise=category_of, max_failures=10)
    assert summary.failures_truncated and summary.failures_read == 10
    assert [g.count for g in summary.groups] == [10]  # the first ten by end time: the Monday burst
    assert summary.totals.failed == 54  # the counts stay whole


def test_the_email_has_the_figures_the_chart_and_the_links(timed: Timed, recorded: tuple[str, dict[str, Any]]) -> None:
    tenant_id, _ = recorded
    report = weekly.build_report(timed.store, WEEK, tenant_ids=[tenant_id])
    subject, text, html = weekly.render(report, "https://eventstore.contoso.example/")
    assert subject == ("Event store weekly summary 2026-11-09 to 2026-11-15: 162 messages, 66.7 % succeeded, 54 failed")
    category = report.tenants[0].week.groups[0].category_id
    for part in (text, html):
        assert "162" in part and "66.7 %" in part and "▲ 1520 % against the week before (10)" in part
        assert "▼ 33.3 points against the week before (100.0 %)" in part
        assert "mail answered &lt;n&gt;" in part if part is html else "mail answered <n>" in part
        assert "deal.won" in part and DEALS in part and "order.paid" in part
        assert "Faulted instances" in part and "deal-1" in part and "Dead letters" in part

    # The text part: a sparkline of the 7 days (a dot where nothing ended), the groups with their links.
    assert "▅▁▁··█·" in text
    assert "   50  send-email · http 503 · mail answered <n> service unavailable" in text
    failures = (
        f"https://eventstore.contoso.example/api/console/tenants/{tenant_id}/failures?category={category}"
        "&from=2026-11-09T00%3A00%3A00%2B00%3A00&to=2026-11-16T00%3A00%3A00%2B00%3A00"
    )
    replay = (
        f"https://eventstore.contoso.example/api/console/tenants/{tenant_id}/replays?status=failed"
        f"&messageType=deal.won&workflow={DEALS}&from=2026-11-09T00%3A00%3A00%2B00%3A00"
        "&to=2026-11-16T00%3A00%3A00%2B00%3A00"
    )
    assert failures in text and replay in text
    assert "<script>alert(1)</script>" in text  # plain text is not HTML: shown as reported

    # The HTML part: inline SVG, 7 bars per chart, the threshold line; nothing external, nothing run.
    svgs = re.findall(r"<svg .*?</svg>", html, re.S)
    assert len(svgs) == 2  # all tenants, then the tenant
    for svg in svgs:
        assert len(re.findall(r"<rect ", svg)) == 7
        assert 'stroke-dasharray="5,3"' in svg and "threshold 5.0 %" in svg
    assert "50.0 %" in svgs[1] and "100.0 %" in svgs[1]
    assert re.search(r"<script|javascript:|\bsrc=|<link|@import|url\(", html, re.I) is None
    assert failures.replace("&", "&amp;") in html and replay.replace("&", "&amp;") in html
    # Everything is escaped: the odd message type and the fault's error text are data.
    assert "&lt;b&gt;odd&lt;/b&gt; &amp; type" in html and "<b>odd" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
