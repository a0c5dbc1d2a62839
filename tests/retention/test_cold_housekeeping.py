"""Retention's housekeeping against a real PostgreSQL and Azurite: large payloads kept in the hot container
move to cold segments too (and their hot blobs go, unless a recent row shares them); segments a killed
archiver left behind are found, recorded and deleted, while every recorded segment stays; after the archive
key is rotated, the old key still opens what it sealed until each run re-wraps those data keys under the new
one, after which the old key can go."""

from __future__ import annotations

import argparse
import base64
import json
import os
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from pydantic import SecretStr

from eventstore import EventStore, EventType, NewEvent, Settings, instance_stream_id
from eventstore.errors import PayloadIntegrityError
from eventstore.retention.archiver import Archiver
from eventstore.store import MAINTENANCE_STREAM_ID, ArchiveKeys, is_cold
from eventstore_local import retention_commands
from tests.helpers import random_tenant_id
from tests.retention.test_archiver import NOW, retention_settings

OLD = datetime(2026, 7, 20, 10, 0, tzinfo=UTC)


def _large(n: int, filler: bytes = b"x") -> NewEvent:
    payload = b'{"n": %d, "attachment": "' % n + filler * 300_000 + b'"}'
    return NewEvent(event_id=uuid4(), event_type=EventType.STATE_CHANGED, payload=payload, workflow_id="wf")


def _records(store: EventStore, tenant_id: str, kind: str) -> list[dict[str, Any]]:
    return [
        json.loads(r.payload or b"")
        for r in store.tenant(tenant_id).read_stream(MAINTENANCE_STREAM_ID)
        if r.event_type == kind
    ]


def test_large_payloads_move_from_the_hot_container_to_cold_segments(settings: Settings, azurite: Any) -> None:
    # Two large payloads fill a segment's byte budget before its event count.
    config = retention_settings(settings, azurite, retention_segment_events=10, retention_segment_bytes=400_000)
    with EventStore(config, clock=lambda: OLD) as old, EventStore(config) as store:
        tenant_id = random_tenant_id()
        old.onboard_tenant(tenant_id)
        shared = _large(0, b"s")
        old_events = [shared, _large(1), _large(2)]
        old.tenant(tenant_id).append(instance_stream_id("i-1"), old_events)
        # The same bytes recorded again today share the hot blob: it must outlive the old row's move.
        again = NewEvent(event_id=uuid4(), event_type=EventType.STATE_CHANGED, payload=shared.payload)
        store.tenant(tenant_id).append(instance_stream_id("i-2"), [again])
        tenant, payloads = store.tenant(tenant_id), store.payloads
        assert payloads is not None
        hot = {e.event_id: tenant.get_event(e.event_id) for e in [*old_events, again]}
        assert all(h is not None and h.blob_ref and not is_cold(h.blob_ref) for h in hot.values())
        archiver = Archiver(store, config, clock=lambda: NOW)
        assert store.retention(tenant_id).figures(archiver.cutoff()).held_before == 3

        run = archiver.run_tenant(tenant_id)
        assert (run.events, len(run.segments), run.hot_blobs_deleted) == (3, 3, 2)  # one per segment: the budget
        for new in old_events:
            moved = tenant.get_event(new.event_id)
            assert moved is not None and is_cold(moved.blob_ref) and tenant.payload_of(moved) == new.payload
            gone = hot[new.event_id]
            assert gone is not None and gone.blob_ref is not None
            assert payloads.exists(gone.blob_ref) == (new is shared)  # the shared blob stays for today's row
        today = tenant.get_event(again.event_id)
        assert today is not None and tenant.payload_of(today) == again.payload and not is_cold(today.blob_ref)
        assert sum(r["events"] for r in _records(store, tenant_id, EventType.PAYLOADS_ARCHIVED)) == 3
        assert Archiver(store, config, clock=lambda: NOW).run_tenant(tenant_id).events == 0


def test_segments_no_record_names_are_deleted_and_recorded_and_recorded_ones_stay(
    settings: Settings, azurite: Any
) -> None:
    config = retention_settings(settings, azurite, retention_orphan_grace_seconds=0)
    with EventStore(config, clock=lambda: OLD) as old, EventStore(config) as store:
        tenant_id = random_tenant_id()
        old.onboard_tenant(tenant_id)
        kept = [
            NewEvent(event_id=uuid4(), event_type=EventType.STATE_CHANGED, payload=b'{"n": %d}' % n) for n in range(3)
        ]
        old.tenant(tenant_id).append(instance_stream_id("i-1"), kept)
        retention, payloads = store.retention(tenant_id), store.payloads
        assert payloads is not None
        # What an archiver killed after writing its segment, before its commit, leaves behind.
        payloads.put_segment(retention.cold_container, "segments/killed-mid-batch.seg", b"sealed bytes", "Cool")
        # With the default grace a fresh orphan may still be a batch on its way: it stays.
        careful = Archiver(store, retention_settings(settings, azurite), clock=lambda: NOW).run_tenant(tenant_id)
        assert (careful.events, careful.orphans_deleted) == (3, 0)

        run = Archiver(store, config, clock=lambda: NOW).run_tenant(tenant_id)
        assert (run.events, run.orphans_deleted) == (0, 1)
        names = {n for n, _, _ in payloads.list_segments(retention.cold_container)}
        assert names == set(careful.segments)  # every recorded segment is still there
        [deleted] = _records(store, tenant_id, EventType.SEGMENTS_DELETED)
        assert (deleted["segments"], deleted["bytes"]) == (["segments/killed-mid-batch.seg"], len(b"sealed bytes"))
        tenant = store.tenant(tenant_id)
        for new in kept:
            found = tenant.get_event(new.event_id)
            assert found is not None and tenant.payload_of(found) == new.payload
        assert Archiver(store, config, clock=lambda: NOW).run_tenant(tenant_id).orphans_deleted == 0


def test_a_rotated_archive_key_opens_what_it_sealed_until_each_data_key_is_rewrapped(
    settings: Settings, azurite: Any
) -> None:
    first = retention_settings(settings, azurite)
    assert first.archive_key is not None
    new_key = base64.b64encode(os.urandom(32)).decode()
    rotated = first.model_copy(
        update={
            "archive_key": SecretStr(new_key),
            "archive_previous_keys": SecretStr(first.archive_key.get_secret_value()),
        }
    )
    only_new = first.model_copy(update={"archive_key": SecretStr(new_key)})
    with EventStore(first, clock=lambda: OLD) as old, EventStore(first) as before:
        tenant_id = random_tenant_id()
        old.onboard_tenant(tenant_id)
        events = [
            NewEvent(event_id=uuid4(), event_type=EventType.STATE_CHANGED, payload=b'{"n": %d}' % n) for n in range(5)
        ]
        old.tenant(tenant_id).append(instance_stream_id("i-1"), events)
        assert Archiver(before, first, clock=lambda: NOW).run_tenant(tenant_id).events == 5
    with EventStore(only_new) as lost:
        found = lost.tenant(tenant_id).get_event(events[0].event_id)
        assert found is not None
        with pytest.raises(PayloadIntegrityError, match="EVENTSTORE_ARCHIVE_PREVIOUS_KEYS"):
            lost.tenant(tenant_id).payload_of(found)  # the old key is still needed: it says which setting
    with EventStore(rotated) as store:
        tenant = store.tenant(tenant_id)
        for new in events:  # the previous key still opens them
            found = tenant.get_event(new.event_id)
            assert found is not None and tenant.payload_of(found) == new.payload
        said: list[str] = []
        status = argparse.Namespace(action="status", tenant=tenant_id, dry_run=False)
        retention_commands.run(status, store, say=said.append)
        assert said[-1].strip() == "data keys still under a previous archive key: 5", said
        run = Archiver(store, rotated, clock=lambda: NOW).run_tenant(tenant_id)
        assert run.rewrapped == 5
        records = _records(store, tenant_id, EventType.DATA_KEYS_REWRAPPED)  # a batch each (2 events here)
        old_kid = ArchiveKeys.kid_of(base64.b64decode(first.archive_key.get_secret_value())).hex()
        new_kid = ArchiveKeys.kid_of(base64.b64decode(new_key)).hex()
        assert sum(r["events"] for r in records) == 5
        assert {(tuple(r["fromKeys"]), r["toKey"]) for r in records} == {((old_kid,), new_kid)}
        assert Archiver(store, rotated, clock=lambda: NOW).run_tenant(tenant_id).rewrapped == 0
        said.clear()
        retention_commands.run(status, store, say=said.append)
        assert said[-1].strip() == "data keys still under a previous archive key: 0", said
    with EventStore(only_new) as store:  # the old key can go now
        tenant = store.tenant(tenant_id)
        for new in events:
            found = tenant.get_event(new.event_id)
            assert found is not None and tenant.payload_of(found) == new.payload
