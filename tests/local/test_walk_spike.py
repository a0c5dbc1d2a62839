"""`eventstore walk --spike` against a running host: the sample engine driven into a failure spike and out of it
pages once and resolves once, with the Slack posts between, at real local receivers, from the host's real
alert timer (every 2 s here instead of every minute)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest
import requests
from psycopg import sql
from psycopg.conninfo import make_conninfo

from eventstore_local.engine import DEAL_WORKFLOW_ID, LocalEngine
from eventstore_local.standins.azurite import Azurite
from eventstore_local.standins.pagerduty import PagerDutyStandIn
from eventstore_local.standins.slack import SlackWebhookStandIn
from eventstore_local.walk import SpikeResult, send_spike_walk
from tests.helpers import PROJECT_ROOT


@pytest.fixture
def spike_database(server_url: str) -> Iterator[str]:
    """A database of the test's own: the host's alert timer visits every tenant with new events, and the
    suite's database holds every other test's, whose views it would then bring up to date under them."""
    name = f"eventstore_spike_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def spike_storage() -> Iterator[Azurite]:
    """An Azurite of the test's own: on the shared one, this host's queue triggers would take the suite's
    host's messages."""
    emulator = Azurite().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def receivers() -> Iterator[tuple[PagerDutyStandIn, SlackWebhookStandIn]]:
    with PagerDutyStandIn() as pagerduty, SlackWebhookStandIn() as slack:
        yield pagerduty, slack


@pytest.fixture
def spike_host(
    spike_database: str,
    spike_storage: Azurite,
    receivers: tuple[PagerDutyStandIn, SlackWebhookStandIn],
    tmp_path: Path,
) -> Iterator[str]:
    """`eventstore host` as a person runs it, but with its alert channels set to the test's receivers (as a
    configured deployment's are) and the alert timer every 2 s; its API root."""
    pagerduty, slack = receivers
    port = _free_port()
    env = {
        **{name: value for name, value in os.environ.items() if not name.upper().startswith("EVENTSTORE_")},
        "EVENTSTORE_DATABASE_URL": spike_database,
        "AzureWebJobsStorage": spike_storage.connection_string,
        "EVENTSTORE_ALERTS_SCHEDULE": "*/2 * * * * *",
        "EVENTSTORE_PAGERDUTY_ROUTING_KEY": pagerduty.routing_key,
        "EVENTSTORE_PAGERDUTY_URL": pagerduty.base_url,
        "EVENTSTORE_SLACK_WEBHOOK_URL": slack.url,
        "EVENTSTORE_PUBLIC_URL": "https://eventstore.contoso.example",
    }
    command = [sys.executable, "-m", "eventstore_local", "host", "--port", str(port), "--no-azurite", "--no-engine"]
    command += ["--eventgrid-port", "-1", "--alerts-port", "-1", "--settings", str(tmp_path / "absent.json")]
    log_path = tmp_path / "host.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-4000:]
            try:
                if requests.get(f"{api}/openapi.json", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        yield api
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_spike_walk_shows_one_page_its_slack_posts_and_its_resolve(
    spike_host: str, spike_storage: Azurite, receivers: tuple[PagerDutyStandIn, SlackWebhookStandIn]
) -> None:
    pagerduty, slack = receivers
    queue = f"spike-{uuid4().hex[:12]}"
    lines: list[str] = []
    with LocalEngine(
        spike_host, spike_storage.connection_string, crm_port=0, email_port=0, queue=queue, backoff=0.01
    ) as engine:
        result: SpikeResult = send_spike_walk(
            spike_host,
            storage=spike_storage.connection_string,
            email_url=engine.email.url,
            pagerduty_url=pagerduty.base_url,
            slack_url=f"http://127.0.0.1:{slack.port}",
            say=lines.append,
            queue=queue,
            alert_timeout=60.0,
            progress_every=1.0,
        )
    text = "\n".join(lines)
    key = f"eventstore/{result.tenant_id}/failure-rate/{DEAL_WORKFLOW_ID}"
    pages = [(e.action, e.dedup_key) for e in pagerduty.accepted if result.tenant_id in e.dedup_key]
    assert pages == [("trigger", key), ("resolve", key)]
    assert result.dedup_key == key == result.trigger["dedup_key"] == result.resolve["dedup_key"]

    details = result.trigger["payload"]["custom_details"]
    assert (details["executions"], details["failed"]) == (20, 2)
    assert "20 executions ended, 2 failed" in text and "40 executions ended, 2 failed" in text
    # The engine's email step failed for exactly the spike's failing deals, 3 attempts each.
    assert sum(1 for r in engine.email.requests if r.status == 503) == 2 * 3
    for link in result.trigger["links"]:
        assert f"{link['text']}: {link['href']}" in text
        assert link["href"].startswith("https://eventstore.contoso.example/") and result.tenant_id in link["href"]

    posts = [p.text or "" for p in slack.accepted]
    assert len(posts) == 2 and len(result.slack_posts) == 2
    assert "2 of 20 executions failed" in posts[0] and posts[1].startswith(":white_check_mark: Resolved")
    assert "the trigger arrived after" in text and "the resolve arrived after" in text
