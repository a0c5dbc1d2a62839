"""The change feed through the local Functions host: the ingest nudge, and the feed health endpoint."""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
import pytest

from eventstore_local.standins.eventgrid import EventGridStandIn
from tests.helpers import random_tenant_id
from tests.http.client import Api, HttpApi, assert_problem, envelope, native


@pytest.fixture(scope="module")
def api(api_url: str) -> Api:
    return HttpApi(api_url)


@pytest.fixture
def tenant_id(api: Api) -> str:
    tenant = random_tenant_id()
    assert api.request("PUT", f"tenants/{tenant}").status == 201
    return tenant


def arrivals(grid: EventGridStandIn, tenant: str) -> list[dict[str, Any]]:
    return [e for e in grid.events if e["source"] == f"/tenants/{tenant}"]


def wait_for_arrivals(grid: EventGridStandIn, tenant: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(found := arrivals(grid, tenant)) < count:
        assert time.monotonic() < deadline, f"{len(found)} of {count} feed events arrived within {timeout} s"
        time.sleep(0.02)
    return found


def health(api: Api, tenant: str) -> dict[str, Any]:
    answer = api.get(f"tenants/{tenant}/feed")
    assert answer.status == 200, answer.body
    body: dict[str, Any] = answer.json()
    return body


def test_an_append_reaches_event_grid_without_waiting_for_the_timer(
    api: Api, tenant_id: str, feed_grid: EventGridStandIn
) -> None:
    # The test host's timer fires once a day: only the nudge can deliver these.
    accepted = api.post(f"tenants/{tenant_id}/messages", envelope(tenant_id))
    assert accepted.status == 202
    appended = api.post(f"tenants/{tenant_id}/instances/i-1/events", native("StepCompleted"))
    assert appended.status == 201
    events = wait_for_arrivals(feed_grid, tenant_id, 2, timeout=5)
    assert [e["id"] for e in events] == [accepted.json()["eventId"], appended.json()["eventIds"][0]]
    assert events[0]["subject"] == "audit" and events[1]["subject"] == "workflowInstances/i-1"
    assert events[0]["type"] == "io.eventstore.workflow.trigger-received"
    assert "payload" not in json.dumps(events) and '"n": 1' not in json.dumps(events)


def test_feed_health_shows_checkpoint_pending_and_dead_letters(
    api: Api, tenant_id: str, feed_grid: EventGridStandIn
) -> None:
    fresh = health(api, tenant_id)
    assert fresh["tenantId"] == tenant_id and fresh["enabled"] is True
    (sink,) = fresh["sinks"]
    assert sink | {"lastSuccessAt": None} == {
        "name": "eventgrid", "kind": "eventgrid", "enabled": True, "checkpoint": "0:0", "pendingEvents": 0,
        "oldestPendingAgeSeconds": None, "deadLetters": 0, "lastSuccessAt": None, "failingSince": None,
        "lastError": None,
    }  # fmt: skip
    assert api.post(f"tenants/{tenant_id}/instances/i-2/events", native()).status == 201
    wait_for_arrivals(feed_grid, tenant_id, 1)
    deadline = time.monotonic() + 5
    while (sink := health(api, tenant_id)["sinks"][0])["pendingEvents"]:
        assert time.monotonic() < deadline, sink
        time.sleep(0.05)
    assert sink["checkpoint"] != "0:0" and sink["lastSuccessAt"] is not None


def test_an_open_transaction_holds_the_feed_and_shows_in_health(
    api: Api, tenant_id: str, feed_grid: EventGridStandIn, database_url: str
) -> None:
    with psycopg.connect(database_url) as blocker:
        blocker.execute("SELECT pg_current_xact_id()")  # a writing transaction, left open
        pid = blocker.info.backend_pid
        appended = api.post(f"tenants/{tenant_id}/instances/i-3/events", native())
        assert appended.status == 201
        time.sleep(0.6)
        assert arrivals(feed_grid, tenant_id) == []  # the feed never passes an open transaction
        held = health(api, tenant_id)
        writer = held["oldestWritingTransaction"]
        # Ours, or an older one of another session on a shared server.
        assert (
            writer is not None and writer["ageSeconds"] >= 0.5 and (writer["pid"] == pid or writer["ageSeconds"] > 0.6)
        )
        assert held["sinks"][0]["pendingEvents"] == 1 and held["sinks"][0]["oldestPendingAgeSeconds"] >= 0.5
        blocker.rollback()
    # The nudge keeps trying for a while, so the event goes out soon after the blocker ends.
    (event,) = wait_for_arrivals(feed_grid, tenant_id, 1, timeout=5)
    assert event["id"] == appended.json()["eventIds"][0]


def test_feed_health_errors(api: Api) -> None:
    assert api.get("tenants/NOT-A-TENANT/feed").status in (400, 404)
    assert_problem(api.get(f"tenants/{random_tenant_id()}/feed"), 404)
