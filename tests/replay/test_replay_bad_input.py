"""Replays of what cannot simply be sent: a message whose payload lives in Blob storage (sent byte-exact,
its hash verified; tampered or lost, held with the error and never sent), a tenant without a router, an
event that is not a received message, an unknown one. Each a clear answer, nothing half-done."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from eventstore import EventStore, Settings, TenantEvents
from eventstore.errors import RouterNotConfigured, UnknownEvent
from eventstore.ingest import record_message
from eventstore.models import NewEvent
from eventstore.replay.forwarder import Forwarder, ForwardMessage
from eventstore.replay.requests import NotAMessage, Started, job_status, replay_message
from eventstore.replay_wire import parse_queue_message
from eventstore.settings import RouterSettings
from eventstore.store import AUDIT_STREAM_ID
from tests.helpers import random_tenant_id
from tests.http.client import envelope

LIMIT = 1024


@pytest.fixture
def blob_settings(settings: Settings, azurite: Any) -> Settings:
    return settings.model_copy(
        update={
            "inline_payload_limit": LIMIT,
            "blob_connection_string": azurite.connection_string,
            "queue_connection_string": azurite.connection_string,
            "replay_router": RouterSettings(queue=f"router-{uuid4().hex[:12]}"),
        }
    )


@pytest.fixture
def blob_store(blob_settings: Settings) -> Iterator[EventStore]:
    with EventStore(blob_settings) as store:
        yield store


@pytest.fixture
def blob_tenant(blob_store: EventStore) -> TenantEvents:
    tenant_id = random_tenant_id()
    blob_store.onboard_tenant(tenant_id)
    return blob_store.tenant(tenant_id)


@pytest.fixture
def router(blob_settings: Settings) -> Iterator[QueueClient]:
    assert blob_settings.replay_router is not None
    client = QueueClient.from_connection_string(
        blob_settings.queue_connection_string, blob_settings.replay_router.queue or ""
    )
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    yield client
    client.delete_queue()
    client.close()


def _delivered(router: QueueClient) -> list[bytes]:
    found = []
    for message in router.receive_messages(max_messages=32, visibility_timeout=60):
        _, body, _ = parse_queue_message(base64.b64decode(message.content))
        found.append(body)
    return found


def _large_message(store: EventStore, tenant: TenantEvents) -> tuple[bytes, Any]:
    body = envelope(tenant.tenant_id, properties={"WorkflowId": "wf", "Note": "x" * (3 * LIMIT)})
    record_message(store, tenant.tenant_id, body, "test")
    [recorded] = [e for e in tenant.read_stream(AUDIT_STREAM_ID) if e.event_type == "TriggerReceived"]
    assert recorded.blob_ref is not None  # the payload lives in Blob storage
    return body, recorded


def _replay(store: EventStore, settings: Settings, tenant: TenantEvents, event_id: Any) -> Started:
    started = replay_message(store, settings, tenant.tenant_id, event_id, reason="test", requested_by="me")
    assert isinstance(started, Started)
    return started


def test_a_message_in_blob_storage_is_sent_byte_exact_and_a_tampered_one_is_held_never_sent(
    blob_store: EventStore, blob_settings: Settings, blob_tenant: TenantEvents, router: QueueClient, azurite: Any
) -> None:
    body, recorded = _large_message(blob_store, blob_tenant)
    forwarder = Forwarder(blob_store, blob_settings)
    first = _replay(blob_store, blob_settings, blob_tenant, recorded.event_id)
    message = ForwardMessage(tenant_id=blob_tenant.tenant_id, job_id=first.job.job_id, positions=(1,))
    assert forwarder.forward(message) == "sent"
    assert _delivered(router) == [body]

    container, name = recorded.blob_ref.split("/")
    blob = BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(container, name)
    blob.upload_blob(b"tampered", overwrite=True)
    second = _replay(blob_store, blob_settings, blob_tenant, recorded.event_id)
    message = ForwardMessage(tenant_id=blob_tenant.tenant_id, job_id=second.job.job_id, positions=(1,))
    assert forwarder.forward(message) == "failed"
    assert _delivered(router) == []
    status = job_status(blob_store, blob_tenant.tenant_id, second.job.job_id)
    assert (status.job.state, status.job.sent, status.counts.failing) == ("running", 0, 1)
    assert status.job.last_error is not None and str(recorded.event_id) in status.job.last_error
    [item] = blob_store.replays(blob_tenant.tenant_id).items(second.job.job_id)
    assert (item.state, item.attempts) == ("pending", 1)  # held for its next attempt, never dropped
    forwarder.close()


def test_a_tenant_without_a_router_is_refused_with_nothing_recorded(
    store: EventStore, settings: Settings, tenant: TenantEvents
) -> None:
    body = envelope(tenant.tenant_id, properties={"WorkflowId": "wf"})
    accepted = record_message(store, tenant.tenant_id, body, "test")
    before = tenant.read_stream(AUDIT_STREAM_ID)
    with pytest.raises(RouterNotConfigured):
        replay_message(store, settings, tenant.tenant_id, accepted.events[0].event_id, reason="t", requested_by="m")
    assert tenant.read_stream(AUDIT_STREAM_ID) == before
    assert store.replays(tenant.tenant_id).jobs() == []


def test_an_outcome_or_an_unknown_event_cannot_be_replayed(
    blob_store: EventStore, blob_settings: Settings, blob_tenant: TenantEvents
) -> None:
    outcome = NewEvent(event_id=uuid4(), event_type="InstanceCreated", payload=b"{}")
    blob_tenant.append("instance-1", [outcome])
    with pytest.raises(NotAMessage) as refused:
        replay_message(blob_store, blob_settings, blob_tenant.tenant_id, outcome.event_id, reason="r", requested_by="m")
    assert refused.value.field == "eventId"
    with pytest.raises(UnknownEvent):
        replay_message(blob_store, blob_settings, blob_tenant.tenant_id, uuid4(), reason="r", requested_by="m")
    assert blob_store.replays(blob_tenant.tenant_id).jobs() == []
