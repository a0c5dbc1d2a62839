"""`eventstore walk --spike` against a running host: the sample engine driven into a failure spike and out of it
pages once and resolves once, with the Slack posts between, at real local receivers, from the host's real
alert timer (every 2 s here instead of every minute)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from eventstore_local.engine import DEAL_WORKFLOW_ID, LocalEngine
from eventstore_local.host.process import HostProcess
from eventstore_local.standins.azurite import Azurite
from eventstore_local.standins.pagerduty import PagerDutyStandIn
from eventstore_local.standins.slack import SlackWebhookStandIn
from eventstore_local.walk import SpikeResult, send_spike_walk


@pytest.fixture
def receivers() -> Iterator[tuple[PagerDutyStandIn, SlackWebhookStandIn]]:
    with PagerDutyStandIn() as pagerduty, SlackWebhookStandIn() as slack:
        yield pagerduty, slack


@pytest.fixture
def spike_host(
    own_database: str,
    own_azurite: Azurite,
    receivers: tuple[PagerDutyStandIn, SlackWebhookStandIn],
    tmp_path: Path,
) -> Iterator[str]:
    """`eventstore host` as a person runs it, on a database and an Azurite of its own (its alert timer visits
    every tenant with new events), but with its alert channels set to the test's receivers (as a configured
    deployment's are) and the alert timer every 2 s; its API root."""
    pagerduty, slack = receivers
    env = {
        "EVENTSTORE_DATABASE_URL": own_database,
        "AzureWebJobsStorage": own_azurite.connection_string,
        "EVENTSTORE_ALERTS_SCHEDULE": "*/2 * * * * *",
        "EVENTSTORE_PAGERDUTY_ROUTING_KEY": pagerduty.routing_key,
        "EVENTSTORE_PAGERDUTY_URL": pagerduty.base_url,
        "EVENTSTORE_SLACK_WEBHOOK_URL": slack.url,
        "EVENTSTORE_PUBLIC_URL": "https://eventstore.contoso.example",
    }
    options = ["--no-engine", "--eventgrid-port", "-1", "--alerts-port", "-1"]
    with HostProcess(tmp_path, env, options) as host:
        yield host.api


def test_the_spike_walk_shows_one_page_its_slack_posts_and_its_resolve(
    spike_host: str, own_azurite: Azurite, receivers: tuple[PagerDutyStandIn, SlackWebhookStandIn]
) -> None:
    pagerduty, slack = receivers
    queue = f"spike-{uuid4().hex[:12]}"
    lines: list[str] = []
    with LocalEngine(
        spike_host, own_azurite.connection_string, crm_port=0, email_port=0, queue=queue, backoff=0.01
    ) as engine:
        result: SpikeResult = send_spike_walk(
            spike_host,
            storage=own_azurite.connection_string,
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
