"""The local Event Grid stand-in, driven by the real `azure-eventgrid` publisher client."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceResponseError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridPublisherClient

from eventstore_local.standins.eventgrid import API_VERSION, EventGridStandIn

KEY = "test-topic-key"
# Per call: no SDK retries (its default policy retries 5xx/timeouts with backoff), short timeouts.
FAST: dict[str, Any] = {"retry_total": 0, "connection_timeout": 2, "read_timeout": 2}


@pytest.fixture
def grid() -> Iterator[EventGridStandIn]:
    with EventGridStandIn(key=KEY) as standin:
        yield standin


def client_for(grid: EventGridStandIn, key: str = KEY) -> EventGridPublisherClient:
    return EventGridPublisherClient(grid.endpoint, AzureKeyCredential(key))


def event(n: int, data: Any = None) -> CloudEvent[Any]:
    return CloudEvent(
        source="/tenants/abc",
        type="marain.workflow.event.created",
        subject=f"/workflows/w/instances/{n}",
        data=data if data is not None else {"eventId": f"e{n}", "sequenceNumber": n},
        id=f"e{n}",
    )


def test_accepted_events_are_recorded_with_their_attributes(grid: EventGridStandIn) -> None:
    assert grid.endpoint.startswith("http://127.0.0.1:") and grid.endpoint.endswith("/api/events")
    client_for(grid).send([event(1), event(2)], **FAST)
    arrived = grid.wait_for(2, timeout=5)
    assert [e["id"] for e in arrived] == ["e1", "e2"]
    first = arrived[0]
    assert first["specversion"] == "1.0"
    assert first["source"] == "/tenants/abc"
    assert first["type"] == "marain.workflow.event.created"
    assert first["subject"] == "/workflows/w/instances/1"
    assert first["data"] == {"eventId": "e1", "sequenceNumber": 1}
    assert "time" in first
    (request,) = grid.requests
    assert request.status == 200 and request.event_count == 2
    assert request.method == "POST" and request.path == "/api/events" and request.query == f"api-version={API_VERSION}"
    assert request.headers["content-type"] == "application/cloudevents-batch+json; charset=utf-8"
    assert request.headers["aeg-sas-key"] == "***"
    assert all(a.request_index == 0 and a.arrived_at > 0 for a in grid.accepted)


def test_wrong_key_is_401(grid: EventGridStandIn) -> None:
    with pytest.raises(HttpResponseError) as raised:
        client_for(grid, key="not-the-key").send(event(1), **FAST)
    assert raised.value.status_code == 401
    assert isinstance(raised.value, ClientAuthenticationError)
    assert grid.events == []
    assert [r.status for r in grid.requests] == [401]


def test_oversized_batch_is_413(grid: EventGridStandIn) -> None:
    blob = "x" * 200_000
    batch = [event(n, data={"blob": blob}) for n in range(6)]  # ~1.2 MB in one request
    with pytest.raises(HttpResponseError) as raised:
        client_for(grid).send(batch, **FAST)
    assert raised.value.status_code == 413
    assert grid.events == []
    client_for(grid).send(batch[:4], **FAST)  # ~0.8 MB: fits
    assert len(grid.wait_for(4, timeout=5)) == 4


def test_fail_next_errors_then_succeeds(grid: EventGridStandIn) -> None:
    grid.fail_next(1, status=503)
    client = client_for(grid)
    with pytest.raises(HttpResponseError) as raised:
        client.send(event(1), **FAST)
    assert raised.value.status_code == 503
    client.send(event(1), **FAST)
    assert [e["id"] for e in grid.wait_for(1, timeout=5)] == ["e1"]
    assert [r.status for r in grid.requests] == [503, 200]


def test_reject_next_returns_413_for_a_small_batch(grid: EventGridStandIn) -> None:
    grid.reject_next()
    with pytest.raises(HttpResponseError) as raised:
        client_for(grid).send(event(1), **FAST)
    assert raised.value.status_code == 413


def test_hang_next_makes_the_client_time_out(grid: EventGridStandIn) -> None:
    grid.hang_next(1, seconds=5)
    client = client_for(grid)
    with pytest.raises(ServiceResponseError):
        client.send(event(1), retry_total=0, connection_timeout=2, read_timeout=0.3)
    client.send(event(2), **FAST)
    assert [e["id"] for e in grid.wait_for(1, timeout=5)] == ["e2"]


def test_sdk_retries_through_a_failure(grid: EventGridStandIn) -> None:
    grid.fail_next(1, status=500)
    client_for(grid).send(event(1), retry_total=1, retry_backoff_factor=0.01, connection_timeout=2, read_timeout=2)
    assert [r.status for r in grid.requests] == [500, 200]


def test_failure_rate_is_seeded_and_partial() -> None:
    outcomes: list[list[int]] = []
    for _ in range(2):
        with EventGridStandIn(key=KEY, failure_rate=0.5, seed=7) as standin:
            client = client_for(standin)
            for n in range(20):
                with contextlib.suppress(HttpResponseError):
                    client.send(event(n), **FAST)
            outcomes.append([r.status for r in standin.requests])
    assert outcomes[0] == outcomes[1]
    assert 200 in outcomes[0] and 500 in outcomes[0]


def raw_post(grid: EventGridStandIn, body: bytes, headers: dict[str, str], query: str = API_VERSION) -> int:
    request = urllib.request.Request(  # noqa: S310 - a local http URL
        f"{grid.endpoint}?api-version={query}", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - a local http URL
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_protocol_checks(grid: EventGridStandIn) -> None:
    good = {"id": "1", "source": "/s", "type": "t", "specversion": "1.0"}
    batch = "application/cloudevents-batch+json; charset=utf-8"
    auth = {"aeg-sas-key": KEY, "Content-Type": batch}
    assert raw_post(grid, json.dumps([good]).encode(), auth) == 200
    assert raw_post(grid, json.dumps([good]).encode(), {"Content-Type": batch}) == 401
    assert raw_post(grid, json.dumps([good]).encode(), {**auth, "Content-Type": "application/json"}) == 415
    assert raw_post(grid, json.dumps([good]).encode(), auth, query="2020-01-01") == 400
    for missing in ("id", "source", "type", "specversion"):
        partial = {k: v for k, v in good.items() if k != missing}
        assert raw_post(grid, json.dumps([partial]).encode(), auth) == 400
    assert raw_post(grid, json.dumps([{**good, "specversion": "0.3"}]).encode(), auth) == 400
    assert raw_post(grid, b"[not json", auth) == 400
    assert raw_post(grid, b"[]", auth) == 400
    assert len(grid.events) == 1


def test_single_event_over_the_event_limit_is_413() -> None:
    with EventGridStandIn(key=KEY, max_event_bytes=1000) as standin:
        with pytest.raises(HttpResponseError) as raised:
            client_for(standin).send([event(1), event(2, data={"blob": "x" * 2000})], **FAST)
        assert raised.value.status_code == 413
        assert standin.events == []
