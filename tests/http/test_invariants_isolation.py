"""Tenant isolation on every read path, not just append and read_stream.

Two tenants hold look-alike data: the same instance ids, workflow id, event types, even the same event
id (ids are unique per tenant), with different payloads. Each read is made for one tenant, then for the
other, then for the first again, with the same arguments: a statement or plan cached with the first
tenant's schema (which once went unnoticed unless a whole test file ran in a particular order) answers
the second tenant with the first one's events, whichever tenant this process happened to serve first.
Covered: search, event by id, instance listing, state, and over HTTP the audit, event, history and
instance routes of the local host.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import pytest
import requests

from eventstore import EventStore, EventType, NewEvent, TenantEvents, instance_stream_id, query
from tests.helpers import random_tenant_id


@dataclass(frozen=True)
class Seeded:
    name: str
    tenant: TenantEvents
    shared_event: UUID
    own_event: UUID
    own_instance: str
    payloads: frozenset[bytes]


SHARED_EVENT = uuid4()


def seed(tenant: TenantEvents, name: str) -> Seeded:
    """Look-alike data for one tenant; `name` is in every payload, so a leak is plain to see."""
    own_event = uuid4()
    own_instance = f"only-{name}-{uuid4().hex[:8]}"
    events = {
        instance_stream_id("shared"): [
            NewEvent(
                event_id=SHARED_EVENT,
                event_type=EventType.STEP_COMPLETED,
                payload=json.dumps({"tenant": name, "what": "same id"}).encode(),
                workflow_id="wf",
                workflow_instance_id="shared",
            )
        ],
        instance_stream_id(own_instance): [
            NewEvent(
                event_id=own_event,
                event_type=EventType.STEP_COMPLETED,
                payload=json.dumps({"tenant": name, "what": "own"}).encode(),
                workflow_id="wf",
                workflow_instance_id=own_instance,
            )
        ],
    }
    payloads: set[bytes] = set()
    for stream_id, batch in events.items():
        tenant.append(stream_id, batch)
        payloads.update(e.payload for e in batch)
    deadline = time.monotonic() + 30  # another session's open transaction (shared server) holds reads back
    while len(tenant.read_all().events) < len(payloads) and time.monotonic() < deadline:
        time.sleep(0.01)
    return Seeded(name, tenant, SHARED_EVENT, own_event, own_instance, frozenset(payloads))


def two_tenants(store: EventStore, onboard: Any = None) -> tuple[Seeded, Seeded]:
    seeded = []
    for name in ("a", "b"):
        tenant_id = random_tenant_id()
        (onboard or store.onboard_tenant)(tenant_id)
        seeded.append(seed(store.tenant(tenant_id), name))
    return seeded[0], seeded[1]


def test_search_event_by_id_and_instance_listing_stay_in_the_tenant(store: EventStore) -> None:
    a, b = two_tenants(store)
    for mine, other in ((a, b), (b, a), (a, b)):
        tenant = mine.tenant
        found = tenant.search(event_types=["StepCompleted"], workflow_id="wf")
        assert {e.payload for e in found.events} == mine.payloads
        by_stream = tenant.search(stream_id=instance_stream_id("shared"))
        assert [e.payload for e in by_stream.events] == [p for p in mine.payloads if b'"same id"' in p]

        shared = tenant.get_event(mine.shared_event)
        assert shared is not None and shared.payload in mine.payloads
        assert tenant.get_event(mine.own_event) is not None
        assert tenant.get_event(other.own_event) is None

        states, _ = query.list_instances(store, tenant.tenant_id)
        assert sorted(s.workflow_instance_id for s in states) == sorted(["shared", mine.own_instance])
        assert query.rebuild_state(tenant, other.own_instance).last_sequence == 0


def onboard_over_http(api_url: str) -> Any:
    def onboard(tenant_id: str) -> None:
        answer = requests.put(f"{api_url}/tenants/{tenant_id}", timeout=60)
        assert answer.status_code == 201, answer.text

    return onboard


def test_the_http_reads_stay_in_the_tenant(store: EventStore, api_url: str) -> None:
    a, b = two_tenants(store, onboard_over_http(api_url))

    def get(tenant: Seeded, path: str, **params: str) -> requests.Response:
        return requests.get(f"{api_url}/tenants/{tenant.tenant.tenant_id}/{path}", params=params, timeout=60)

    for mine, other in ((a, b), (b, a), (a, b)):
        audit = get(mine, "audit", eventType="StepCompleted", workflowId="wf")
        assert audit.status_code == 200, audit.text
        assert {e["eventId"] for e in audit.json()["events"]} == {str(mine.shared_event), str(mine.own_event)}
        assert {e["payload"]["tenant"] for e in audit.json()["events"]} == {mine.name}

        raw = get(mine, f"events/{mine.shared_event}")
        assert raw.status_code == 200 and raw.content in mine.payloads
        assert get(mine, f"events/{other.own_event}").status_code == 404

        history = get(mine, "instances/shared/events")
        assert history.status_code == 200
        assert [e["eventId"] for e in history.json()["events"]] == [str(mine.shared_event)]
        assert get(mine, f"instances/{other.own_instance}/events").status_code == 404

        instances = get(mine, "instances")
        assert instances.status_code == 200
        listed = sorted(i["workflowInstanceId"] for i in instances.json()["instances"])
        assert listed == sorted(["shared", mine.own_instance])


@pytest.mark.parametrize("path", ["audit", "instances", "events/{event}", "instances/shared/events"])
def test_an_unknown_tenant_gets_404_on_every_read(api_url: str, path: str) -> None:
    answer = requests.get(f"{api_url}/tenants/{random_tenant_id()}/{path.format(event=uuid4())}", timeout=60)
    assert answer.status_code == 404, answer.text
