"""Continuation tokens are bound to the query and the tenant that produced them, checked black-box over HTTP.

A token is taken from a real answer of the local host, then replayed with one thing changed: the audit
search's `from` or `to`, or the tenant of a history, an audit or an instance list. Each must be refused
with 400 naming `continuation`, never served as a page of a different result. Tokens are never built
or opened here: how they are encoded (and signed) is the product's business.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from eventstore import EventStore, TenantEvents, instance_stream_id
from tests.helpers import event, random_tenant_id


def onboard(store: EventStore, api_url: str, events_per_instance: int = 3) -> TenantEvents:
    """A tenant onboarded over HTTP with `events_per_instance` events in instances "i-1" and "i-2"."""
    tenant_id = random_tenant_id()
    answer = requests.put(f"{api_url}/tenants/{tenant_id}", timeout=60)
    assert answer.status_code == 201, answer.text
    tenant = store.tenant(tenant_id)
    for instance in ("i-1", "i-2"):
        tenant.append(instance_stream_id(instance), [event({"n": n}) for n in range(events_per_instance)])
    deadline = time.monotonic() + 30  # another session's open transaction (shared server) holds reads back
    while len(tenant.read_all().events) < 2 * events_per_instance and time.monotonic() < deadline:
        time.sleep(0.01)
    return tenant


def get(api_url: str, tenant: TenantEvents, path: str, **params: str) -> requests.Response:
    return requests.get(f"{api_url}/tenants/{tenant.tenant_id}/{path}", params=params, timeout=60)


def page(api_url: str, tenant: TenantEvents, path: str, **params: str) -> dict[str, Any]:
    answer = get(api_url, tenant, path, **params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def assert_refused(answer: requests.Response) -> None:
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json().get("field") == "continuation", answer.text


@pytest.fixture
def tenants(store: EventStore, api_url: str) -> tuple[TenantEvents, TenantEvents]:
    return onboard(store, api_url), onboard(store, api_url)


def test_an_audit_token_is_bound_to_from_and_to(api_url: str, tenants: tuple[TenantEvents, TenantEvents]) -> None:
    tenant = tenants[0]
    recorded = sorted(e["recordedAt"] for e in page(api_url, tenant, "audit", limit="100")["events"])
    assert len(recorded) == 6
    # Windows that all hold every event, so a token that ignored them would page on "successfully".
    window = {"from": "2000-01-01T00:00:00+00:00", "to": "2999-01-01T00:00:00+00:00"}
    first = page(api_url, tenant, "audit", limit="2", **window)
    token = first["continuation"]
    assert token and len(first["events"]) == 2

    same = page(api_url, tenant, "audit", limit="2", continuation=token, **window)
    assert [e["eventId"] for e in same["events"]] != [e["eventId"] for e in first["events"]]
    for changed in (
        {**window, "from": recorded[0]},
        {**window, "to": "2998-01-01T00:00:00+00:00"},
        {"to": window["to"]},
        {"from": window["from"]},
        {},
    ):
        assert_refused(get(api_url, tenant, "audit", limit="2", continuation=token, **changed))


def test_tokens_are_bound_to_their_tenant(api_url: str, tenants: tuple[TenantEvents, TenantEvents]) -> None:
    """Both tenants hold an instance "i-1" with the same number of events, so the same query is valid
    for both: only the tenant differs."""
    mine, other = tenants
    history = page(api_url, mine, "instances/i-1/events", limit="1")["continuation"]
    audit = page(api_url, mine, "audit", limit="1")["continuation"]
    instances = page(api_url, mine, "instances", limit="1")["continuation"]
    assert history and audit and instances
    assert page(api_url, mine, "instances/i-1/events", limit="1", continuation=history)["events"]
    assert page(api_url, mine, "audit", limit="1", continuation=audit)["events"]
    assert page(api_url, mine, "instances", limit="1", continuation=instances)["instances"]

    assert_refused(get(api_url, other, "instances/i-1/events", limit="1", continuation=history))
    assert_refused(get(api_url, other, "audit", limit="1", continuation=audit))
    assert_refused(get(api_url, other, "instances", limit="1", continuation=instances))
