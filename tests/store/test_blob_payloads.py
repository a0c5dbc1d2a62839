"""Large payloads in Blob storage (real Azurite): written before the row, read back exact and verified."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from azure.storage.blob import BlobServiceClient
from psycopg import sql

from eventstore import EventStore, PayloadIntegrityError, PayloadTooLarge, Settings, TenantEvents
from tests.helpers import event, random_tenant_id

LIMIT = 1024


@pytest.fixture
def blob_tenant(settings: Settings, azurite: Any, store: EventStore) -> Iterator[TenantEvents]:
    configured = settings.model_copy(
        update={
            "inline_payload_limit": LIMIT,
            "blob_connection_string": azurite.connection_string,
            "max_payload_size": 4 * 1024 * 1024,
        }
    )
    with EventStore(configured) as blob_store:
        tenant_id = random_tenant_id()
        store.onboard_tenant(tenant_id)
        yield blob_store.tenant(tenant_id)


def test_large_payloads_live_in_the_tenants_container_and_read_back_exactly(
    blob_tenant: TenantEvents, azurite: Any, owner_conn: psycopg.Connection[tuple[Any, ...]]
) -> None:
    big = os.urandom(3 * LIMIT)
    big_json = b'{"blob": "' + b"x" * (2 * LIMIT) + b'"}'
    small = event({"small": True})
    batch = [event(big, content_type="application/octet-stream"), small, event(big_json)]
    result = blob_tenant.append("s", batch)
    assert result.sequence_numbers == (1, 2, 3)
    read = blob_tenant.read_stream("s")
    assert [e.blob_ref is not None for e in read] == [True, False, True]
    assert read[0].payload is None and read[0].payload_size == len(big)
    assert read[0].payload_sha256 == hashlib.sha256(big).digest()
    assert [blob_tenant.payload_of(e) for e in read] == [big, small.payload, big_json]
    container = blob_tenant.placement.container_name
    assert read[0].blob_ref == f"{container}/{hashlib.sha256(big).hexdigest()}"
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    names = {b.name for b in service.get_container_client(container).list_blobs()}
    assert names == {hashlib.sha256(big).hexdigest(), hashlib.sha256(big_json).hexdigest()}
    copies = owner_conn.execute(
        sql.SQL("SELECT payload IS NULL, payload_json IS NULL FROM {} ORDER BY sequence_number").format(
            sql.Identifier(blob_tenant.placement.schema_name, "events")
        )
    ).fetchall()
    assert copies == [(True, True), (False, False), (True, True)]
    fetched = blob_tenant.get_event(batch[2].event_id)
    assert fetched is not None and blob_tenant.payload_of(fetched) == big_json


def test_a_repeated_large_append_is_idempotent(blob_tenant: TenantEvents) -> None:
    batch = [event(os.urandom(2 * LIMIT), content_type="application/octet-stream")]
    first = blob_tenant.append("s", batch)
    again = blob_tenant.append("s", batch)
    assert again.repeated and again.global_positions == first.global_positions
    assert len(blob_tenant.read_stream("s")) == 1


def test_a_changed_or_missing_blob_is_detected(blob_tenant: TenantEvents, azurite: Any) -> None:
    payload = os.urandom(2 * LIMIT)
    blob_tenant.append("s", [event(payload, content_type="application/octet-stream")])
    [recorded] = blob_tenant.read_stream("s")
    assert recorded.blob_ref is not None
    container, name = recorded.blob_ref.split("/")
    blob = BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(container, name)
    blob.upload_blob(b"tampered", overwrite=True)
    with pytest.raises(PayloadIntegrityError):
        blob_tenant.payload_of(recorded)
    blob.delete_blob()
    with pytest.raises(PayloadIntegrityError, match="missing"):
        blob_tenant.payload_of(recorded)


def test_payloads_over_the_maximum_are_refused_before_anything_is_written(blob_tenant: TenantEvents) -> None:
    with pytest.raises(PayloadTooLarge):
        blob_tenant.append("s", [event(b"x" * (4 * 1024 * 1024 + 1), content_type="text/plain")])
    assert blob_tenant.stream_version("s") == 0
