"""The console in a real browser (Debian's chromium through Playwright), over `eventstore host` with the
sample engine: an operator finds a failed message, opens its trace, reads the failing step's error, replays
it once the bug is fixed and watches it succeed. Every page is readable at 1280 px and on a phone (390 px),
usable by keyboard, and runs nothing a client stored (a `<script>` in a payload, an instance id and a workflow
id stays text). Screenshots of each page are written at both widths (tests/console/browser.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import uuid4

import pytest

from eventstore_local.engine import Deal, LocalEngine, deal_won_envelope
from eventstore_local.engine.messages import encode_body, engine_queue
from eventstore_local.standins.azurite import Azurite
from tests.conftest import scratch_database
from tests.console.browser import ConsoleHost, Shots
from tests.helpers import wait_for

FAILING = "@failing.example"
DEALS = 12

pytestmark = [pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def storage() -> Iterator[Any]:
    """An Azurite of this module's own (its host's queue triggers must not take the suite host's messages)."""
    emulator = Azurite().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def host(server_url: str, storage: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleHost]:
    folder = tmp_path_factory.mktemp("console-host")
    with (
        scratch_database(server_url, "eventstore_console") as database,
        ConsoleHost(database, storage.connection_string, f"console-{uuid4().hex[:12]}", folder) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def engine(host: ConsoleHost, storage: Any) -> Iterator[LocalEngine]:
    queue = host.env["EVENTSTORE_REPLAY_ROUTER__QUEUE"]
    with LocalEngine(
        host.api, storage.connection_string, crm_port=0, email_port=0, queue=queue, backoff=0.01, workers=2
    ) as local:
        yield local


@pytest.fixture(scope="module")
def tenant(host: ConsoleHost, engine: LocalEngine, storage: Any) -> str:
    """A tenant whose deals went through the engine with the email bug: one in four failed."""
    tenant_id = host.onboard()
    engine.email.fail_matching(FAILING, status=500)
    run = uuid4().hex[:6]
    deals = [
        Deal(deal_id=f"{run}-{n}", customer=f"Customer {n}", amount=100.0 + n,
             email=f"buyer{n}{FAILING}" if n % 4 == 1 else f"buyer{n}@contoso.example")
        for n in range(DEALS)
    ]  # fmt: skip
    with engine_queue(storage.connection_string, engine.queue) as inbox:
        for deal in deals:
            inbox.send_message(encode_body(json.dumps(deal_won_envelope(tenant_id, deal)).encode()))
    assert engine.engine is not None
    engine.engine.wait_for(DEALS, timeout=300)
    wait_for(
        "the failures in the messages view",
        lambda: len(host.call("GET", f"tenants/{tenant_id}/messages", status="failed").json()["messages"]) == 3,
    )
    return tenant_id


def _recorded(dialogs: list[str]) -> Any:
    """A dialog handler: any alert a stored script opened is recorded (and dismissed)."""

    def handle(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    return handle


def test_an_operator_finds_a_failed_message_reads_its_trace_replays_it_and_sees_it_succeed(
    browser: Any, host: ConsoleHost, engine: LocalEngine, tenant: str, shots: Shots
) -> None:
    console = host.console
    dialogs: list[str] = []
    pages = shots.take(browser, f"{console}/tenants/{tenant}", "overview")
    page = pages["wide"]
    page.on("dialog", _recorded(dialogs))
    assert page.get_by_role("heading", name="Overview").is_visible()
    page.get_by_role("link", name="Messages", exact=True).click()
    page.get_by_label("Processing status").select_option("failed")
    page.get_by_role("button", name="Search").click()
    assert "3 message(s) match" in page.get_by_role("status").inner_text()
    shots.take(browser, page.url, "messages")
    page.locator("table.messages tbody tr").first.get_by_role("link").first.click()

    # The message: failed, with its execution; the trace names the failing step and the destination's error.
    assert page.locator(".badge.failed").first.is_visible()
    message_url = page.url
    shots.take(browser, message_url, "message")
    page.locator("section", has=page.get_by_role("heading", name="Executions")).get_by_role("link").first.click()
    failing_step = page.locator("li.step.status-failed").first
    assert "send-email" in failing_step.inner_text()
    assert "the email service answered 500" in failing_step.locator("pre.error").inner_text()
    shots.take(browser, page.url, "trace")

    # The bug fixed, the replay asked from the message's page, with a reason: it succeeds.
    engine.email.fail_matching(None)
    page.goto(message_url)
    page.get_by_label("Reason").fill("the email service was fixed")
    page.get_by_role("button", name="Replay this message").click()
    assert "Replay asked" in page.locator("p.notice").first.inner_text()

    def succeeded() -> bool:
        page.reload()
        return bool(page.locator("dl.facts .badge.succeeded").count() > 0)

    wait_for("the replayed message succeeded", succeeded, timeout=120, every=1)
    rows = page.locator("section", has=page.get_by_role("heading", name="Executions")).locator("tbody tr")
    assert rows.count() == 2  # the original run and the replay
    assert dialogs == []


def test_a_bulk_replay_is_dry_run_started_and_watched_to_its_end(
    browser: Any, host: ConsoleHost, engine: LocalEngine, tenant: str, shots: Shots
) -> None:
    engine.email.fail_matching(None)  # the bug fixed
    failed = len(host.call("GET", f"tenants/{tenant}/messages", status="failed").json()["messages"])
    assert failed >= 1
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{host.console}/tenants/{tenant}/replays")
    page.get_by_label("Processing status").select_option("failed")
    page.get_by_role("button", name="Dry run").click()
    assert page.get_by_role("status").inner_text().startswith(f"{failed} message(s) match")
    shots.take(browser, page.url, "replays")
    page.get_by_label("Reason (recorded with the replay, with your name)").fill("email fixed: the rest of them")
    page.get_by_label("I checked the count").check()
    page.get_by_role("button", name="Start the replay").click()
    assert "/replays/" in page.url and page.locator("#sent-bar").count() == 1
    job_url = page.url

    def ended() -> bool:
        page.goto(job_url)
        bar = page.locator("#ended-bar")
        return bool(page.locator(".badge.finished").count() and bar.get_attribute("value") == bar.get_attribute("max"))

    wait_for("the job's progress bar reaches the end", ended, timeout=180, every=1)
    assert page.locator("#sent-bar").get_attribute("value") == str(failed)
    shots.take(browser, job_url, "replay-job")
    wait_for(
        "no failed message left",
        lambda: not host.call("GET", f"tenants/{tenant}/messages", status="failed").json()["messages"],
    )


def test_the_failure_rate_chart_rises_above_the_threshold_line_during_a_spike(
    browser: Any, host: ConsoleHost, engine: LocalEngine, storage: Any, shots: Shots
) -> None:
    spiking = host.onboard()
    url = f"{host.console}/tenants/{spiking}/failures"

    def send(count: int, failing: bool) -> None:
        run = uuid4().hex[:6]
        with engine_queue(storage.connection_string, engine.queue) as inbox:
            for n in range(count):
                email = f"spike{n}{FAILING}" if failing else f"calm{n}@contoso.example"
                deal = Deal(deal_id=f"{run}-{n}", customer="Spike", amount=1.0, email=email)
                inbox.send_message(encode_body(json.dumps(deal_won_envelope(spiking, deal)).encode()))

    assert engine.engine is not None
    seen = len(engine.engine.results)
    engine.email.fail_matching(None)
    send(6, failing=False)
    engine.engine.wait_for(seen + 6, timeout=180)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url)
    assert page.locator(".chart line.threshold").count() == 1
    assert page.locator(".chart .dot.over").count() == 0  # calm: every run succeeded
    engine.email.fail_matching(FAILING, status=500)
    send(6, failing=True)
    engine.engine.wait_for(seen + 12, timeout=180)

    def above() -> bool:
        page.goto(url)
        return bool(page.locator(".chart .dot.over").count() >= 1)

    wait_for("the hour's failure rate above the threshold line", above, timeout=60, every=1)
    shots.take(browser, url, "failures")
    engine.email.fail_matching(None)


def test_the_other_pages_render_at_both_widths(browser: Any, host: ConsoleHost, tenant: str, shots: Shots) -> None:
    executions = host.call("GET", f"tenants/{tenant}/executions", status="failed").json()["executions"]
    shots.take(browser, f"{host.console}/tenants/{tenant}/executions/{executions[0]['executionId']}/compare", "compare")
    shots.take(browser, f"{host.console}/tenants/{tenant}/feed", "feed")
    shots.take(browser, f"{host.console}?q={tenant[:8]}", "tenants")
    shots.take(browser, f"{host.console}/dead-letters", "dead-letters")
    instance = executions[0]["workflowInstanceId"]
    dry = f"{host.console}/tenants/{tenant}/erasures?kind=instance&value={quote(instance)}&reason=GDPR+request&dryrun=1"
    pages = shots.take(browser, dry, "erasure")
    assert "would be erased" in pages["wide"].get_by_role("status").inner_text()


def test_the_instance_timeline_shows_each_change_and_rebuilds_the_state_at_a_point(
    browser: Any, host: ConsoleHost, tenant: str, shots: Shots
) -> None:
    messages = host.call("GET", f"tenants/{tenant}/messages", status="succeeded").json()["messages"]
    instance = messages[0]["workflowInstanceId"]
    pages = shots.take(browser, f"{host.console}/tenants/{tenant}/instances/{quote(instance, safe='')}", "instance")
    page = pages["wide"]
    assert page.locator("ol.timeline li").count() >= 3
    page.get_by_role("link", name="State after event 2", exact=True).click()
    assert page.locator("ol.timeline li.picked").count() == 1
    assert "after event 2" in page.get_by_role("heading", level=2).first.inner_text()


def test_every_page_is_usable_by_keyboard_and_labelled(browser: Any, host: ConsoleHost, tenant: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{host.console}/tenants/{tenant}/messages")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input, select, textarea')]
           .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
           .map(e => e.name)"""
    )
    assert unlabelled == []
    # The search form works from the keyboard alone.
    page.get_by_label("Processing status").focus()
    page.keyboard.press("Enter")
    assert page.url.startswith(f"{host.console}/tenants/{tenant}/messages")


def test_nothing_a_client_stored_runs_in_the_page(browser: Any, host: ConsoleHost, shots: Shots) -> None:
    tenant = host.onboard()
    script = "<script>window.__ran = 1; document.title = 'pwned'</script><img src=x onerror=window.__ran=2>"
    instance = f"i-{script}"
    body = {"executionId": f"x-{script}", "note": script}
    answer = host.call(
        "POST", f"tenants/{tenant}/instances/{quote(instance, safe='')}/events",
        {"eventId": str(uuid4()), "eventType": "StateChanged", "workflowId": f"w-{script}", "payload": body},
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", _recorded(dialogs))
    page.goto(f"{host.console}/tenants/{tenant}/instances/{quote(instance, safe='')}")
    assert page.evaluate("window.__ran") is None and page.title() != "pwned" and dialogs == []
    assert script in page.locator("h1").inner_text()  # shown as the text it is


def test_screenshots_are_written_for_both_widths(shots: Shots) -> None:
    written = sorted(p.name for p in Path(shots.folder).glob("*.png"))
    for name in ("overview", "messages", "message", "trace", "instance", "replays", "replay-job", "failures", "compare",
                 "feed", "tenants", "dead-letters", "erasure"):  # fmt: skip
        assert {f"{name}-wide.png", f"{name}-phone.png"} <= set(written), written
