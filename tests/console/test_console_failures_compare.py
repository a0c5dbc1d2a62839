"""The failures and compare pages over real HTTP (the suite's local host, open access): after a spike of
failures the failures page draws the alert threshold and marks the hours over it, its table holds the
figures recorded, its categories and alert state come from the same reads as the weekly email and the alerts
API; a failed execution is compared with the run that fixed it step by step, what differs marked; a bad
filter or execution id is a 400 or 404 page naming the parameter, a comparison refused a page saying why,
and every id a client sent is escaped."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from urllib.parse import quote
from uuid import uuid4

import pytest

from eventstore import EventStore, NewEvent, Settings, instance_stream_id
from eventstore.alerts import failure_rate
from eventstore.query import up_to_date
from eventstore.views import EXECUTIONS
from tests.console.browser import SCRIPT, page
from tests.helpers import random_tenant_id, settle
from tests.http.client import HttpApi, Response
from tests.http.test_traces_api import WORKFLOW, execution, post_message, report

HOUR_ROW = re.compile(
    r'<tr class="(bad|)"><th scope="row">([^<]+)</th><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>'
    r"<td>([^<]+)</td><td>(over|)</td></tr>"
)
DOT = re.compile(r'<circle class="dot( over)?" cx="([\d.]+)" cy="([\d.]+)"')


def _spike(api: HttpApi, tenant: str, prefix: str) -> None:
    """One execution that succeeds and three that fail for good (their messages dead-lettered)."""
    ok = post_message(api, tenant, f"{prefix}-ok")
    report(api, tenant, execution(f"{prefix}-ok", ok), f"{prefix}-ok")
    for n in range(3):
        bad = post_message(api, tenant, f"{prefix}-bad-{n}")
        report(api, tenant, execution(f"{prefix}-bad-{n}", bad, mail_fails_for_good=True), f"{prefix}-bad-{n}")


def _hours(text: str) -> list[tuple[bool, str, list[int], str, bool]]:
    """The hourly table's rows: (marked bad, hour, [started, succeeded, failed, dead-lettered], rate, over)."""
    table = text.split('<table class="hours">', 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        (bad == "bad", hour, [int(n) for n in numbers], rate, over == "over")
        for bad, hour, *numbers, rate, over in HOUR_ROW.findall(body)
    ]


def _threshold_y(text: str) -> float:
    found = re.search(r'<line class="threshold" x1="[\d.]+" y1="([\d.]+)" x2="[\d.]+" y2="([\d.]+)"', text)
    assert found and found.group(1) == found.group(2), text[:3000]
    return float(found.group(1))


def _total(text: str) -> list[str]:
    """The cells of the hourly table's total row."""
    foot = text.split("<tfoot>", 1)[1].split("</tfoot>", 1)[0]
    return re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", foot)


def test_the_failures_page_draws_the_threshold_and_marks_the_hours_over_it(api: HttpApi, tenant: str) -> None:
    before = page(api, f"tenants/{tenant}/failures")
    text = before.body.decode()
    assert before.status == 200, text
    assert _threshold_y(text) > 0 and "alert threshold 5.0 %" in text and not DOT.findall(text)
    assert "No execution started or ended in these 7 days." in text and _hours(text) == []

    _spike(api, tenant, "spike")
    after = page(api, f"tenants/{tenant}/failures")
    text = after.body.decode()
    assert after.status == 200, text
    assert 'role="img" aria-label="Hourly failure rate over the last 7 days (UTC): 3 of 4 executions' in text
    threshold = _threshold_y(text)
    dots = [(over == " over", float(cy)) for over, _, cy in DOT.findall(text)]
    assert any(over for over, _ in dots), dots
    # A point over the threshold is drawn above its line (SVG's y grows downwards), every other one below.
    assert all((cy < threshold) == over for over, cy in dots), (threshold, dots)

    rows = _hours(text)
    assert [sum(r[2][k] for r in rows) for k in range(4)] == [4, 1, 3, 3], rows
    for bad, hour, (_, succeeded, failed, _), rate, over in rows:
        ended = succeeded + failed
        assert bad == over == (ended > 0 and failed / ended > 0.05), (hour, rate)
        assert rate == (f"{100 * failed / ended:.1f} %" if ended else "\u2013")
    assert len([r for r in rows if r[4]]) == len([d for d in dots if d[0]])  # the table is the chart's figures
    assert _total(text) == ["7 days", "4", "1", "3", "3", "75.0 %", ""], _total(text)

    categories = text.split('id="categories"', 1)[1].split("</section>", 1)[0]
    assert "1 category" in categories and "<strong>send-email</strong>: http 503" in categories
    assert re.search(r"<tr><td>3</td><td>3</td>", categories), categories
    types = text.split('id="types"', 1)[1].split("</section>", 1)[0]
    assert re.search(r'<th scope="row">Submit</th><td>3</td><td>3</td><td>4</td><td>75.0 %</td>', types), types

    # The workflow filter: the same figures for the workflow that ran, none for another.
    mine = page(api, f"tenants/{tenant}/failures", workflow=WORKFLOW).body.decode()
    assert (
        _total(mine) == ["7 days", "4", "1", "3", "3", "75.0 %", ""] and f'<option value="{WORKFLOW}" selected>' in mine
    )
    other = page(api, f"tenants/{tenant}/failures", workflow="another-workflow").body.decode()
    assert (
        _total(other) == ["7 days", "0", "0", "0", "0", "\u2013", ""] and not DOT.findall(other) and _hours(other) == []
    )
    assert "No execution failed in these 7 days." in other.split('id="categories"', 1)[1].split("</section>", 1)[0]


def test_the_failures_page_shows_the_open_incident_and_its_slack_post(
    api: HttpApi, tenant: str, store: EventStore, settings: Settings
) -> None:
    assert "No incident was ever opened." in page(api, f"tenants/{tenant}/failures").body.decode()
    _spike(api, tenant, "alert")
    settle(store, store.tenant(tenant))
    up_to_date(store, tenant, EXECUTIONS)
    alerting = settings.model_copy(update={"slack_webhook_url": "http://127.0.0.1:9/slack", "alert_min_executions": 1})
    opened = failure_rate.evaluate(store.alerts(tenant), alerting, datetime.now(UTC))
    assert opened.opened == [f"eventstore/{tenant}/failure-rate/{WORKFLOW}"]

    text = page(api, f"tenants/{tenant}/failures").body.decode()
    alerts = text.split('id="alerts"', 1)[1].split("</section>", 1)[0]
    incident = re.search(r'<tr class="bad"><th scope="row">([^<]+)</th><td>failure-rate</td><td>.*?>open<', alerts)
    assert incident and incident.group(1) == WORKFLOW, alerts
    assert "3 of 4 failed (75.0 %) in 60 min" in alerts
    [post] = re.findall(r"<td>slack</td><td>failure-rate</td><td>\w+</td><td>\d+</td><td>([^<]*)</td>", alerts)
    assert post.startswith(f":rotating_light: Workflow {WORKFLOW}: 3 of 4 executions failed"), post


@pytest.mark.parametrize("workflow", ["a\u0001b", "w" * 513])
def test_a_malformed_workflow_is_a_400_page_naming_it(api: HttpApi, tenant: str, workflow: str) -> None:
    answer = page(api, f"tenants/{tenant}/failures", workflow=workflow)
    assert answer.status == 400 and _detail(answer).startswith("workflow:"), answer.body


def _detail(answer: Response) -> str:
    """What a problem page says."""
    found = re.search(r"<p><strong>\d+</strong> (.*?)</p>", answer.body.decode(), re.S)
    assert found, answer.body
    return found.group(1)


def _steps(text: str) -> dict[str, str]:
    """Each step's rows of the comparison, by step name."""
    chunks = text.split('<tbody class="step" aria-label="Step ')[1:]
    return {chunk.split('"', 1)[0]: chunk.split("</tbody>", 1)[0] for chunk in chunks}


def _marked(rows: str, what: str) -> str:
    found = re.search(rf'<th scope="row" class="(differs|same)">{what}\b', rows)
    assert found, rows
    return found.group(1)


def test_a_failed_run_is_compared_with_the_one_that_fixed_it_step_by_step(api: HttpApi, tenant: str) -> None:
    message = post_message(api, tenant, "deal-cmp")
    report(api, tenant, execution("cmp-1", message, mail_fails_for_good=True), "deal-cmp")

    alone = page(api, f"tenants/{tenant}/executions/cmp-1/compare")
    text = alone.body.decode()
    assert alone.status == 409 and "Nothing to compare." in text and "has a succeeded execution" in text, text

    report(api, tenant, execution("cmp-2", message), "deal-cmp")  # another run of the message succeeds
    for params in ({}, {"with": "cmp-2"}):
        compared = page(api, f"tenants/{tenant}/executions/cmp-1/compare", **params)
        text = compared.body.decode()
        assert compared.status == 200, text
        assert "/executions/cmp-1" in text and "/executions/cmp-2" in text
        assert ("the latest run of this message that succeeded" in text) == (params == {}), params
        steps = _steps(text)
        assert list(steps) == ["create-crm-record", "send-email"]
        crm, mail = steps["create-crm-record"], steps["send-email"]
        assert 'class="differs"' not in crm and "differs" not in crm, crm
        assert [_marked(mail, w) for w in ("status", "attempts", "output", "error")] == [
            "differs", "same", "differs", "differs",
        ]  # fmt: skip
        assert "differs: status, output, error" in mail and "mail answered 503" in mail
        assert "1 of 2 step(s) differ" in text

    # From the run that succeeded: beside the message's failed run.
    reverse = page(api, f"tenants/{tenant}/executions/cmp-2/compare").body.decode()
    assert "the latest run of this message that failed (this one did not)" in reverse
    assert _marked(_steps(reverse)["send-email"], "status") == "differs"


def test_refused_comparisons_and_bad_ids_are_pages_naming_the_parameter(
    api: HttpApi, tenant: str, store: EventStore
) -> None:
    message = post_message(api, tenant, "deal-ref")
    report(api, tenant, execution("ref-1", message, mail_fails_for_good=True), "deal-ref")
    # An execution of another workflow that names no message.
    events = [
        NewEvent(event_id=uuid4(), event_type="ExecutionStarted", payload=json.dumps({"executionId": "lone"}).encode(),
                 workflow_id="another-workflow", workflow_instance_id="lone-1"),
    ]  # fmt: skip
    store.tenant(tenant).append(instance_stream_id("lone-1"), events)

    route = f"tenants/{tenant}/executions/ref-1/compare"
    for params, status in (
        ({"with": "never-ran"}, 404), ({"with": "a\u0001b"}, 400), ({"with": "x" * 257}, 400),
        ({"with": "ref-1"}, 400), ({"with": "lone"}, 400),
    ):  # fmt: skip
        answer = page(api, route, **params)
        assert answer.status == status and _detail(answer).startswith("with"), (params, answer.status, _detail(answer))
    for path in (
        f"tenants/{tenant}/executions/never-ran/compare",
        f"tenants/{random_tenant_id()}/executions/x/compare",
    ):
        assert page(api, path).status == 404, path
    lone = page(api, f"tenants/{tenant}/executions/lone/compare")
    assert lone.status == 409 and "names no message" in lone.body.decode()


def test_ids_a_client_sent_are_escaped_on_both_pages(api: HttpApi, tenant: str) -> None:
    message = post_message(api, tenant, "deal-esc")
    report(api, tenant, execution(f"bad-{SCRIPT}", message, mail_fails_for_good=True), "deal-esc")
    report(api, tenant, execution(f"ok-{SCRIPT}", message), "deal-esc")
    route = f"tenants/{tenant}/executions/{quote(f'bad-{SCRIPT}', safe='')}/compare"
    compared, unknown = page(api, route), page(api, route, **{"with": SCRIPT})
    failures = page(api, f"tenants/{tenant}/failures", workflow=SCRIPT)
    assert (compared.status, unknown.status, failures.status) == (200, 404, 200), compared.body
    for answer in (compared, unknown, failures):
        text = answer.body.decode()
        assert "<script>" not in text and "&lt;script&gt;" in text, text[:3000]
