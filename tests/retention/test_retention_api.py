"""Archived payloads over real HTTP (the suite's local host, which holds the same archive key): the exact bytes
and their ETag from cold storage, an instance's state rebuilt from archived events (not from empty payloads),
the Archive tier answered with 409 payload-archived and Retry-After and then read once rehydrated, and where
retention stands in the tenant's health. Then `eventstore retention status|run` on the same tenant."""

from __future__ import annotations

import argparse
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from eventstore import EventStore, EventType, Settings, instance_stream_id
from eventstore.retention.archiver import Archiver
from eventstore_local.retention_commands import add_arguments, run
from tests.helpers import event, random_tenant_id
from tests.http.client import HttpApi
from tests.retention.test_archiver import NOW, retention_settings

OLD = datetime(2026, 7, 15, 9, 0, tzinfo=UTC)


def _recorded(store: EventStore) -> tuple[str, list[Any]]:
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    tenant = store.tenant(tenant_id)
    created = event({"workflowId": "claims", "newState": "draft", "newStatus": "waiting"}, EventType.INSTANCE_CREATED)
    moved = event({"newState": "approved", "newStatus": "waiting", "newContext": {"amount": 120}},
                  EventType.TRANSITION_COMPLETED)  # fmt: skip
    tenant.append(instance_stream_id("claim-1"), [created, moved])
    return tenant_id, [created, moved]


def test_archived_payloads_read_back_over_http_and_the_state_is_rebuilt_from_them(
    settings: Settings, azurite: Any, api_url: str
) -> None:
    config = retention_settings(settings, azurite)
    with EventStore(config, clock=lambda: OLD) as old, EventStore(config) as store:
        tenant_id, events = _recorded(old)
        assert Archiver(store, config, clock=lambda: NOW).run_tenant(tenant_id).events == 2
    api = HttpApi(api_url)
    answer = api.get(f"tenants/{tenant_id}/events/{events[1].event_id}")
    assert answer.status == 200 and answer.body == events[1].payload
    assert answer.headers["etag"] == f'"{hashlib.sha256(events[1].payload).hexdigest()}"'
    state = api.get(f"tenants/{tenant_id}/instances/claim-1/state").json()
    assert (state["stateId"], state["context"]) == ("approved", {"amount": 120})
    health = api.get(f"tenants/{tenant_id}/health").json()["retention"]
    assert (health["archivedEvents"], health["segments"], health["heldPastCutoff"]) == (2, 1, 0)
    assert health["archivedBytes"] == sum(len(e.payload) for e in events)


def test_the_archive_tier_answers_409_with_retry_after_then_the_payload(
    settings: Settings, azurite: Any, api_url: str
) -> None:
    config = retention_settings(settings, azurite, retention_tier="Archive")
    with EventStore(config, clock=lambda: OLD) as old, EventStore(config) as store:
        tenant_id, events = _recorded(old)
        Archiver(store, config, clock=lambda: NOW).run_tenant(tenant_id)
    api = HttpApi(api_url)
    archived = api.get(f"tenants/{tenant_id}/events/{events[0].event_id}")
    assert archived.status == 409 and archived.content_type == "application/problem+json"
    problem = archived.json()
    assert problem["type"].endswith(":payload-archived") and problem["eventId"] == str(events[0].event_id)
    assert int(archived.headers["retry-after"]) == problem["retryAfterSeconds"] > 0
    # Azurite rehydrates at once (Azure: hours); the next read is the exact payload.
    again = api.get(f"tenants/{tenant_id}/events/{events[0].event_id}")
    assert again.status == 200 and again.body == events[0].payload


def test_the_retention_command_says_what_is_due_and_moves_it(settings: Settings, azurite: Any) -> None:
    config = retention_settings(settings, azurite)
    parser = argparse.ArgumentParser(prog="eventstore retention")
    add_arguments(parser)
    with EventStore(config, clock=lambda: OLD) as old, EventStore(config) as store:
        tenant_id, _ = _recorded(old)
        lines: list[str] = []
        run(parser.parse_args(["status", "--tenant", tenant_id]), store, lines.append)
        assert lines[0].startswith("retention 90 days (cutoff ") and "2 past the cutoff" in lines[1]
        assert "oldest payload held 2026-07-15" in lines[1]
        run(parser.parse_args(["run", "--tenant", tenant_id, "--dry-run"]), store, lines.append)
        assert store.retention(tenant_id).figures(datetime.now(UTC)).held_before == 2  # a dry run moves nothing
        run(parser.parse_args(["run", "--tenant", tenant_id, "--requested-by", "ops"]), store, lines.append)
        assert lines[-1] == "2 payload(s) moved to cold storage (Cool)"
        records = store.tenant(tenant_id).read_stream("maintenance")
        assert [(r.event_type, r.user_id) for r in records] == [
            (EventType.PAYLOADS_ARCHIVED, "ops"), (EventType.PARTITION_COMPACTED, "ops"),
        ]  # fmt: skip
        assert json.loads(records[0].payload or b"")["events"] == 2
        assert any(line.startswith("  partition events_2026m07 compacted: ") for line in lines)
