"""Metrics to Application Insights (docs/telemetry.md), against a real host and a real ingestion stand-in.

The instrumented process is never pytest's: configuring OpenTelemetry sets a process-wide meter provider that
no test could undo. `eventstore host --appinsights` runs in a process of its own, with an Azurite and an Event
Grid stand-in of its own too (a second host on the suite's Azurite would take the suite's queue messages),
and the test reads what its stand-in received from the stand-in's listing. Without the connection string, a
subprocess does real work and shows that nothing of the exporter was even imported.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventstore_local.host.process import HostProcess, free_port
from eventstore_local.standins.appinsights import METRIC_ENVELOPE, MetricPoint, metric_points
from tests.helpers import CONTINUATION_KEY, PROJECT_ROOT, random_tenant_id
from tests.http.client import Api, HttpApi, assert_problem, envelope, native

GRID_KEY = "telemetry-test-grid-key"


class Received:
    """What the host's Application Insights stand-in received, read from its listing."""

    def __init__(self, port: int) -> None:
        self.host, self.port = "127.0.0.1", port

    def envelopes(self) -> list[dict[str, Any]]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request("GET", "/received")
            return [item["envelope"] for item in json.load(conn.getresponse())["envelopes"]]
        finally:
            conn.close()

    def metrics(self, name: str, **properties: str) -> list[MetricPoint]:
        return [
            p
            for p in metric_points(self.envelopes())
            if p.name == name and all(p.properties.get(k) == v for k, v in properties.items())
        ]

    def total(self, name: str, **properties: str) -> float:
        return sum(p.value for p in self.metrics(name, **properties))

    def count(self, name: str, **properties: str) -> int:
        return sum(p.count for p in self.metrics(name, **properties))


def eventually(condition: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "never received"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def instrumented_host(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Api, Received, str]]:
    """`eventstore host --appinsights <port>` with metrics exported every half second: (its API, what its
    stand-in received, its storage connection string)."""
    from eventstore_local.standins.azurite import Azurite
    from eventstore_local.standins.eventgrid import EventGridStandIn

    folder = tmp_path_factory.mktemp("telemetry-host")
    host_json = json.loads((PROJECT_ROOT / "host.json").read_text())
    host_json["extensions"]["queues"].update(visibilityTimeout="00:00:01", maxPollingInterval="00:00:00.500")
    (folder / "host.json").write_text(json.dumps(host_json))
    insights_port = free_port()
    with Azurite(Path(folder / "azurite")) as azurite, EventGridStandIn(key=GRID_KEY) as grid:
        env = {
            "EVENTSTORE_DATABASE_URL": database_url,
            "AzureWebJobsStorage": azurite.connection_string,
            "EVENTSTORE_EVENTGRID_ENDPOINT": grid.endpoint,
            "EVENTSTORE_EVENTGRID_KEY": GRID_KEY,
            # The timers stay out of the way of the other tests' tenants (the nudge alone runs views and feed).
            "EVENTSTORE_FEED_SCHEDULE": "0 0 0 * * *",
            "EVENTSTORE_VIEWS_SCHEDULE": "0 0 0 * * *",
            "EVENTSTORE_ALERTS_SCHEDULE": "0 0 0 * * *",
            "EVENTSTORE_WEEKLY_SCHEDULE": "0 0 0 1 1 *",
            "EVENTSTORE_REPLAY_SCHEDULE": "0 0 0 * * *",
            "EVENTSTORE_CONTINUATION_KEY": CONTINUATION_KEY,
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "TMPDIR": str(folder),  # the exporter's retry storage
        }
        options = ["--no-engine", "--alerts-port", "-1", "--appinsights", str(insights_port)]
        options += ["--host-json", str(folder / "host.json")]
        leave_out = ("EVENTSTORE_", "APPLICATIONINSIGHTS_", "OTEL_")
        with HostProcess(folder, env, options, leave_out=leave_out) as host:
            banner = host.log(last=100_000)
            assert f"local Application Insights stand-in at http://127.0.0.1:{insights_port}" in banner
            yield HttpApi(host.api), Received(insights_port), azurite.connection_string


def _send_to_queue(connection_string: str, queue: str, body: bytes) -> None:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient

    with QueueClient.from_connection_string(
        connection_string, queue, message_encode_policy=BinaryBase64EncodePolicy()
    ) as client:
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        client.send_message(body)


def test_counters_and_ingest_and_view_timings_reach_application_insights(
    instrumented_host: tuple[Api, Received, str],
) -> None:
    api, received, storage = instrumented_host
    tenant = random_tenant_id()
    assert api.request("PUT", f"tenants/{tenant}").status == 201
    message = envelope(tenant)
    assert api.post(f"tenants/{tenant}/messages", message).status == 202
    assert api.post(f"tenants/{tenant}/messages", message).json()["repeated"] is True
    assert api.post(f"tenants/{tenant}/instances/claim-1/events", native()).status == 201
    for _ in range(2):
        assert_problem(api.get(f"tenants/{random_tenant_id()}"), 404)
    _send_to_queue(storage, "workflow-messages", envelope(tenant))
    _send_to_queue(storage, "workflow-messages", envelope(random_tenant_id()))  # never onboarded: refused

    ingest = "ingest_duration"
    eventually(
        lambda: (
            received.count(ingest, operation="message", source="queue", outcome="recorded") >= 1
            and received.total("queue_message_failures", queue="workflow-messages", reason="UnknownTenant") >= 1
            and received.total("http_problems", status="404") >= 2
            and received.count("view_catch_up_duration", view="instances") >= 1
        )
    )
    # The counters, under their in-process names and labels, with what this host counted.
    assert received.total("http_problems", status="404") == 2
    assert received.total("queue_messages_recorded", queue="workflow-messages") == 1
    # The ingest timings: one value per append, in seconds, by operation, source and outcome.
    assert received.count(ingest, operation="message", source="http", outcome="recorded") == 1
    assert received.count(ingest, operation="message", source="http", outcome="repeated") == 1
    assert received.count(ingest, operation="outcomes", source="http", outcome="recorded") == 1
    assert received.count(ingest, operation="message", source="queue", outcome="recorded") == 1
    assert received.count(ingest, operation="message", source="queue", outcome="error") >= 1
    timings = received.metrics(ingest) + received.metrics("view_catch_up_duration")
    assert timings and all(0 < p.value < 60 and p.min is not None and p.min <= (p.max or 0) for p in timings)
    # A catch-up per tenant and view, with the view and how it ended; no attribute names a tenant.
    views = {p.properties["view"] for p in received.metrics("view_catch_up_duration", outcome="caught_up")}
    assert {"instances", "messages"} <= views
    points = received.metrics("view_catch_up_duration") + received.metrics(ingest) + received.metrics("http_problems")
    assert all(tenant not in json.dumps(p.properties) for p in points)
    # Metrics only: the Functions host sends requests and logs; the app adds no duplicates of them.
    assert {e["name"] for e in received.envelopes()} == {METRIC_ENVELOPE}


def test_feed_publish_timings_reach_application_insights(instrumented_host: tuple[Api, Received, str]) -> None:
    api, received, _ = instrumented_host
    tenant = random_tenant_id()
    assert api.request("PUT", f"tenants/{tenant}").status == 201
    assert api.post(f"tenants/{tenant}/messages", envelope(tenant)).status == 202  # the nudge publishes it
    eventually(lambda: received.count("feed_publish_duration", outcome="caught_up") >= 1)
    (sink,) = {p.properties["sink"] for p in received.metrics("feed_publish_duration")}
    assert sink and all(p.value > 0 for p in received.metrics("feed_publish_duration"))


_WITHOUT_CONNECTION_STRING = """
import json, sys
from uuid import uuid4
from eventstore import NewEvent, telemetry
from eventstore.http.metrics import COUNTERS, HTTP_PROBLEMS
from eventstore.services import services

app = services()
tenant_id = sys.argv[1]
app.store.onboard_tenant(tenant_id)
created = NewEvent(event_id=uuid4(), event_type="StepCompleted", payload=b"{}")
app.store.tenant(tenant_id).append("instance-1", [created])
runs = app.view_runner.run_tenant(tenant_id)
COUNTERS.add(HTTP_PROBLEMS, status="404")
with telemetry.timed(telemetry.INGEST_DURATION, source="http") as timing:
    timing.set(outcome="recorded")
print(json.dumps({
    "caught_up": all(run.caught_up for run in runs),
    "enabled": telemetry.enabled(),
    "shared_no_op": type(timing) is telemetry.Timing,
    "imported": sorted(m for m in sys.modules if m.startswith(("opentelemetry", "azure.monitor"))),
}))
"""


def test_nothing_is_configured_or_sent_without_a_connection_string(database_url: str) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("APPLICATIONINSIGHTS_", "PYTHON_APPLICATIONINSIGHTS"))
    }
    env["EVENTSTORE_DATABASE_URL"] = database_url
    answer = subprocess.run(
        [sys.executable, "-c", _WITHOUT_CONNECTION_STRING, random_tenant_id()],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    outcome = json.loads(answer.stdout.strip().splitlines()[-1])
    assert outcome == {"caught_up": True, "enabled": False, "shared_no_op": True, "imported": []}
