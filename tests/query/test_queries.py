from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from eventstore import (
    START,
    EventStore,
    EventType,
    InvalidEventType,
    InvalidInput,
    PayloadIntegrityError,
    PayloadTooLarge,
    Settings,
    TenantEvents,
    query,
)
from eventstore_local.samples import CLAIM_INSTANCE_ID, FAILED_INSTANCE_ID, FAULTED_INSTANCE_ID, expense_claim_walk
from tests.helpers import event, random_tenant_id


def test_get_event_returns_the_exact_payload_verified(walked: Any) -> None:
    step = expense_claim_walk()[3]
    found = walked.get_event(step.event.event_id)
    assert found is not None and found.event_id == step.event.event_id
    assert walked.payload_of(found) == step.event.payload
    assert walked.get_event(uuid4()) is None


def test_a_tampered_payload_is_detected(
    walked: Any, owner_conn: psycopg.Connection[tuple[Any, ...]], settings: Settings
) -> None:
    step = expense_claim_walk()[1]
    with owner_conn.transaction():
        owner_conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(settings.maintenance_role)))
        owner_conn.execute(
            sql.SQL("UPDATE {} SET payload = payload || '\\x20'::bytea WHERE event_id = %s").format(
                sql.Identifier(walked.placement.schema_name, "events")
            ),
            (step.event.event_id,),
        )
    found = walked.get_event(step.event.event_id)
    with pytest.raises(PayloadIntegrityError):
        walked.payload_of(found)


def test_search_by_type_workflow_and_time_pages_without_repeats(walked: Any) -> None:
    walk = expense_claim_walk()
    triggers = [s.event.event_id for s in walk if s.event.event_type == EventType.TRIGGER_RECEIVED]
    page = walked.search(event_types=["TriggerReceived"], limit=100)
    assert [e.event_id for e in page.events] == triggers and not page.more
    paged, after = [], START
    while True:
        page = walked.search(after, limit=3, event_types=["TriggerReceived"])
        paged += [e.event_id for e in page.events]
        after = page.next_checkpoint
        if not page.more:
            break
    assert paged == triggers
    expenses = walked.search(workflow_id="simple-expenses-workflow", limit=100).events
    assert {e.event_id for e in expenses} >= {s.event.event_id for s in walk if s.stream_id.endswith(CLAIM_INSTANCE_ID)}
    assert all(e.workflow_id == "simple-expenses-workflow" for e in expenses)
    now = datetime.now(UTC)
    assert len(
        walked.search(recorded_from=now - timedelta(hours=1), recorded_to=now + timedelta(hours=1)).events
    ) == len(walk)
    assert walked.search(recorded_from=now + timedelta(hours=1)).events == []
    assert walked.search(recorded_to=now - timedelta(hours=1)).events == []
    with pytest.raises(InvalidEventType):
        walked.search(event_types=["Nope"])
    # An empty or reversed range matches nothing (the API cannot say "from before to" in its schema).
    assert walked.search(recorded_from=now, recorded_to=now).events == []
    assert walked.search(recorded_from=now + timedelta(hours=1), recorded_to=now - timedelta(hours=1)).events == []


def test_list_instances_by_status_from_the_view(store: EventStore, walked: TenantEvents) -> None:
    tenant_id = walked.tenant_id
    faulted, after = query.list_instances(store, tenant_id, "faulted")
    assert sorted(s.workflow_instance_id for s in faulted) == sorted([FAULTED_INSTANCE_ID, FAILED_INSTANCE_ID])
    assert after is None
    # The view says exactly what folding each instance's stream says.
    assert faulted == [query.rebuild_state(walked, s.workflow_instance_id) for s in faulted]
    everything, _ = query.list_instances(store, tenant_id)
    assert {s.workflow_instance_id for s in everything} == {CLAIM_INSTANCE_ID, FAULTED_INSTANCE_ID, FAILED_INSTANCE_ID}
    first, cursor = query.list_instances(store, tenant_id, None, limit=1)
    assert len(first) == 1 and cursor == first[0].workflow_instance_id
    rest, end = query.list_instances(store, tenant_id, None, after=cursor)
    assert [s.workflow_instance_id for s in first + rest] == sorted(s.workflow_instance_id for s in everything)
    assert end is None
    workflow = everything[0].workflow_id
    assert workflow is not None
    of_workflow, _ = query.list_instances(store, tenant_id, workflow_id=workflow)
    assert of_workflow == [s for s in everything if s.workflow_id == workflow]
    later = datetime.now(UTC) + timedelta(hours=1)
    assert query.list_instances(store, tenant_id, updated_from=later)[0] == []
    assert query.list_instances(store, tenant_id, updated_to=later)[0] == everything


def test_payloads_over_the_inline_limit_are_refused_without_blob_storage(store: EventStore, settings: Settings) -> None:
    small = EventStore(settings.model_copy(update={"inline_payload_limit": 16, "blob_connection_string": ""}))
    try:
        tenant_id = random_tenant_id()
        store.onboard_tenant(tenant_id)
        with pytest.raises(PayloadTooLarge):
            small.tenant(tenant_id).append("s", [event({"text": "x" * 32})])
        assert small.tenant(tenant_id).stream_version("s") == 0
    finally:
        small.close()


def test_a_value_the_database_cannot_take_is_invalid_input_not_a_server_error(tenant: TenantEvents) -> None:
    # The Python API does not check search values as the HTTP layer does; PostgreSQL refusing one is still
    # the caller's error (InvalidInput, 400 over HTTP), never an unexplained failure.
    with pytest.raises(InvalidInput, match="cannot be stored or compared"):
        tenant.search(workflow_id="a\x00b")
