from __future__ import annotations

from typing import Any

import psycopg
import pytest

from eventstore import EventStore, InvalidInput, InvalidTenantId, UnknownTenant
from tests.helpers import event, random_tenant_id


def test_a_tenants_api_never_returns_another_tenants_events(store: EventStore) -> None:
    a_id, b_id = random_tenant_id(), random_tenant_id()
    store.onboard_tenant(a_id)
    store.onboard_tenant(b_id)
    a, b = store.tenant(a_id), store.tenant(b_id)
    assert a.placement.schema_name != b.placement.schema_name
    a_events = [event({"tenant": "a", "n": n}) for n in range(3)]
    b_events = [event({"tenant": "b", "n": n}) for n in range(2)]
    a.append("audit", a_events)
    a.append("instance:shared-id", [event({"tenant": "a"})])
    b.append("audit", b_events)
    assert [e.event_id for e in a.read_stream("audit")] == [e.event_id for e in a_events]
    assert [e.event_id for e in b.read_stream("audit")] == [e.event_id for e in b_events]
    assert b.read_stream("instance:shared-id") == []
    assert {e.payload for e in a.read_all().events}.isdisjoint({e.payload for e in b.read_all().events})
    assert len(b.read_all().events) == 2
    assert b.stream_version("instance:shared-id") == 0
    # The same event id may exist once per tenant: idempotency is per tenant too.
    same = a_events[0]
    assert not b.append("audit", [same]).repeated


def test_unknown_and_malformed_tenants_are_refused_before_anything_happens(store: EventStore) -> None:
    with pytest.raises(UnknownTenant):
        store.tenant(random_tenant_id())
    with pytest.raises(InvalidTenantId):
        store.tenant("'; DROP SCHEMA es_control CASCADE; --")
    with pytest.raises(InvalidTenantId):
        store.onboard_tenant("not-a-tenant")


def test_onboarding_is_idempotent_and_a_tenant_never_moves(store: EventStore) -> None:
    tenant_id = random_tenant_id()
    first = store.onboard_tenant(tenant_id)
    assert store.onboard_tenant(tenant_id) == first
    with pytest.raises(InvalidInput, match="moving a tenant is not supported"):
        store.onboard_tenant(tenant_id, schema="somewhere_else")
    with pytest.raises(InvalidInput):
        store.onboard_tenant(random_tenant_id(), schema=first.schema_name)  # schema already taken
    with pytest.raises(InvalidInput):
        store.onboard_tenant(random_tenant_id(), dsn_name="nowhere")
    with pytest.raises(InvalidInput):
        store.onboard_tenant(random_tenant_id(), schema="Bad-Schema")


def test_custom_placement(store: EventStore) -> None:
    tenant_id = random_tenant_id()
    placement = store.onboard_tenant(tenant_id, schema=f"custom_{tenant_id[:8]}", container="my-container-1")
    assert (placement.schema_name, placement.container_name) == (f"custom_{tenant_id[:8]}", "my-container-1")
    tenant = store.tenant(tenant_id)
    assert tenant.append("s", [event()]).version == 1
    assert tenant.placement == placement


def test_two_tenants_never_share_a_container_or_a_schema_and_a_refusal_creates_nothing(
    store: EventStore, owner_conn: psycopg.Connection[tuple[Any, ...]]
) -> None:
    first = store.onboard_tenant(random_tenant_id())
    second = random_tenant_id()
    with pytest.raises(InvalidInput, match="container"):
        store.onboard_tenant(second, container=first.container_name)
    with pytest.raises(InvalidInput, match="schema"):
        store.onboard_tenant(second, schema=first.schema_name)
    default_schema = store.placement_for(second).schema_name
    row = owner_conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (default_schema,)).fetchone()
    assert row is not None and row[0] == 0
