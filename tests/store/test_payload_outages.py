"""Lost and altered Blob payloads (real Azurite): a clear error naming the blob, recorded for the tenant's
health, found by `check_payloads` and cleared once the blob is back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from eventstore import EventStore, PayloadIntegrityError, Settings, TenantEvents
from eventstore.errors import PayloadMissing
from eventstore.models import RecordedEvent
from tests.helpers import event, random_tenant_id

LIMIT = 1024


@pytest.fixture
def blob_tenant(settings: Settings, azurite: Any, store: EventStore) -> Iterator[TenantEvents]:
    configured = settings.model_copy(
        update={"inline_payload_limit": LIMIT, "blob_connection_string": azurite.connection_string}
    )
    with EventStore(configured) as blob_store:
        tenant_id = random_tenant_id()
        store.onboard_tenant(tenant_id)
        yield blob_store.tenant(tenant_id)


def _stored_blob(tenant: TenantEvents, azurite: Any) -> tuple[RecordedEvent, bytes, Any]:
    big = os.urandom(3 * LIMIT)
    tenant.append("s", [event(big, content_type="application/octet-stream")])
    (stored,) = tenant.read_stream("s")
    assert stored.blob_ref is not None
    container, name = stored.blob_ref.split("/")
    blob = BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(container, name)
    return stored, big, blob


def test_a_lost_blob_is_payload_missing_recorded_found_by_the_check_and_cleared_when_restored(
    blob_tenant: TenantEvents, azurite: Any
) -> None:
    stored, big, blob = _stored_blob(blob_tenant, azurite)
    assert blob_tenant.check_payloads() == (1, 0)
    blob.delete_blob()

    with pytest.raises(PayloadMissing) as lost:
        blob_tenant.payload_of(stored)
    assert lost.value.blob_ref == stored.blob_ref and lost.value.event_id == stored.event_id
    assert stored.blob_ref in str(lost.value)
    (problem,) = blob_tenant.payload_problems()
    assert (problem.event_id, problem.blob_ref, problem.problem) == (stored.event_id, stored.blob_ref, "missing")
    assert (problem.stream_id, problem.sequence_number) == ("s", 1)

    assert blob_tenant.check_payloads() == (1, 1)
    assert blob_tenant.payload_problems()[0].times_seen == 2

    blob.upload_blob(big)  # restored from a backup
    assert blob_tenant.check_payloads() == (1, 0)
    assert blob_tenant.payload_problems() == [] and blob_tenant.payload_problem_count() == 0
    assert blob_tenant.payload_of(stored) == big


def test_an_altered_blob_is_an_integrity_error_recorded_as_a_mismatch(blob_tenant: TenantEvents, azurite: Any) -> None:
    stored, _, blob = _stored_blob(blob_tenant, azurite)
    blob.upload_blob(b"other bytes", overwrite=True)
    with pytest.raises(PayloadIntegrityError) as altered:
        blob_tenant.payload_of(stored)
    assert not isinstance(altered.value, PayloadMissing)
    (problem,) = blob_tenant.payload_problems()
    assert (problem.event_id, problem.problem) == (stored.event_id, "mismatch")
