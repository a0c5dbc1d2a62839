"""Retention against a real PostgreSQL and a real Azurite: payloads older than the retention period, on
both sides of a month boundary, move to sealed cold segments and read back byte-exact; the rows keep their
metadata and stay searchable; each batch is recorded in the maintenance stream with its manifest and never
the payloads; a second run moves nothing; the Archive tier answers clearly and starts rehydration, after
which a read succeeds; an archiver killed mid-transaction loses nothing and the next run finishes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from psycopg import sql
from pydantic import SecretStr

from eventstore import EventStore, EventType, Settings, instance_stream_id
from eventstore.errors import PayloadArchived
from eventstore.query.traces import read_trace
from eventstore.retention.archiver import Archiver
from eventstore.store import MAINTENANCE_STREAM_ID, ColdRef
from tests.helpers import ARCHIVE_KEY, PROJECT_ROOT, event, random_tenant_id

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
"""The archiver's now: with 90 days the cutoff is 2026-08-17 12:00."""
MOMENTS = [
    datetime(2026, 7, 31, 23, 59, 59, tzinfo=UTC),  # the last second of July
    datetime(2026, 8, 1, 0, 0, 1, tzinfo=UTC),  # the first of August
    datetime(2026, 8, 10, 8, 0, tzinfo=UTC),
    datetime(2026, 8, 20, 8, 0, tzinfo=UTC),  # after the cutoff: stays
    datetime(2026, 11, 14, 8, 0, tzinfo=UTC),  # yesterday: stays
]
ARCHIVED = 3
KEY = ARCHIVE_KEY


def retention_settings(settings: Settings, azurite: Any, **changes: Any) -> Settings:
    return settings.model_copy(
        update={
            "blob_connection_string": azurite.connection_string,
            "archive_key": SecretStr(KEY),
            "retention_days": 90,
            "retention_segment_events": 2,
            **changes,
        }
    )


@pytest.fixture
def cold(settings: Settings, azurite: Any) -> Iterator[tuple[EventStore, str, list[Any]]]:
    """A tenant with two events at each moment (an audit message and an instance event), recorded by a store
    whose clock says so: (the store, the tenant, the events in the order recorded)."""
    moments = iter(m for m in MOMENTS for _ in range(2))
    with EventStore(retention_settings(settings, azurite), clock=lambda: next(moments)) as store:
        tenant_id = random_tenant_id()
        store.onboard_tenant(tenant_id)
        tenant = store.tenant(tenant_id)
        recorded = []
        for n, _ in enumerate(MOMENTS):
            message = event({"n": n, "email": f"person{n}@contoso.example"}, EventType.TRIGGER_RECEIVED)
            step = event(b'{"step": "send-email",  "to": "person%d@contoso.example"}' % n, workflow_id="wf")
            tenant.append("audit", [message])
            tenant.append(instance_stream_id(f"claim-{n}"), [step])
            recorded += [message, step]
        yield store, tenant_id, recorded


def _rows(store: EventStore, tenant_id: str) -> dict[Any, tuple[Any, ...]]:
    schema = store.tenant(tenant_id).placement.schema_name
    with store.pools.owner("default").connection() as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT event_id, payload IS NOT NULL, payload_json IS NOT NULL, blob_ref, archive_key IS NOT NULL,"
                " payload_size, recorded_at FROM {} WHERE stream_id <> %s"
            ).format(sql.Identifier(schema, "events")),
            (MAINTENANCE_STREAM_ID,),
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_old_payloads_move_to_sealed_cold_segments_and_read_back_exactly(
    cold: tuple[EventStore, str, list[Any]],
) -> None:
    store, tenant_id, recorded = cold
    archiver = Archiver(store, store.settings, requested_by="ops@contoso.example", clock=lambda: NOW)
    assert archiver.run_tenant(tenant_id, dry_run=True).due == 2 * ARCHIVED
    run = archiver.run_tenant(tenant_id)
    assert (run.due, run.events, len(run.segments)) == (2 * ARCHIVED, 2 * ARCHIVED, ARCHIVED)  # 2 per segment
    assert run.bytes == sum(len(e.payload) for e in recorded[: 2 * ARCHIVED])

    rows = _rows(store, tenant_id)
    tenant = store.tenant(tenant_id)
    for index, new in enumerate(recorded):
        held, json_copy, blob_ref, key, size, _ = rows[new.event_id]
        if index < 2 * ARCHIVED:
            assert (held, json_copy, key) == (False, False, True) and blob_ref.startswith("cold:")
            assert ColdRef.parse(blob_ref).container == store.retention(tenant_id).cold_container
        else:
            assert (held, blob_ref, key) == (True, None, False)
        assert size == len(new.payload)
        found = tenant.get_event(new.event_id)
        assert found is not None and tenant.payload_of(found) == new.payload  # byte-exact, archived or not
    # The metadata stays searchable: the audit stream's messages of July and August by type and time.
    page = tenant.search(event_types=[EventType.TRIGGER_RECEIVED], recorded_from=MOMENTS[0], recorded_to=MOMENTS[3])
    assert [e.event_id for e in page.events] == [recorded[0].event_id, recorded[2].event_id, recorded[4].event_id]

    # July's partition ended before the cutoff and holds no payload any more: rewritten, every row kept.
    [(partition, before, after)] = run.compacted
    assert partition == "events_2026m07" and after < before
    # Each batch is recorded in the maintenance stream: the manifest, never the payloads; then the compaction.
    *records, compaction = tenant.read_stream(MAINTENANCE_STREAM_ID)
    assert [r.event_type for r in records] == [EventType.PAYLOADS_ARCHIVED] * ARCHIVED
    assert compaction.event_type == EventType.PARTITION_COMPACTED
    assert json.loads(compaction.payload or b"")["bytesAfter"] == after
    manifests = [json.loads(r.payload or b"") for r in records]
    assert [m["segment"] for m in manifests] == run.segments
    assert sum(m["events"] for m in manifests) == 2 * ARCHIVED and all(m["tier"] == "Cool" for m in manifests)
    assert {r.user_id for r in records} == {"ops@contoso.example"}
    assert not any(b"person" in (r.payload or b"") or b"send-email" in (r.payload or b"") for r in records)

    # `eventstore payloads check` finds each archived payload's segment (a HEAD each), none missing.
    assert tenant.check_payloads() == (2 * ARCHIVED, 0)
    figures = store.retention(tenant_id).figures(archiver.cutoff())
    assert (figures.held_before, figures.archived_events, figures.segments) == (0, 2 * ARCHIVED, ARCHIVED)
    assert figures.oldest_held_at == MOMENTS[3]
    again = archiver.run_tenant(tenant_id)
    assert (again.due, again.events, again.compacted) == (0, 0, [])
    assert len(tenant.read_stream(MAINTENANCE_STREAM_ID)) == ARCHIVED + 1
    for new in recorded:  # read again after the rewrite
        found = tenant.get_event(new.event_id)
        assert found is not None and tenant.payload_of(found) == new.payload


def test_the_archive_tier_says_so_starts_rehydration_and_a_later_read_succeeds(
    cold: tuple[EventStore, str, list[Any]], settings: Settings, azurite: Any
) -> None:
    _, tenant_id, recorded = cold
    archive = retention_settings(settings, azurite, retention_tier="Archive")
    with EventStore(archive) as archiving:
        run = Archiver(archiving, archive, clock=lambda: NOW).run_tenant(tenant_id)
        assert run.events == 2 * ARCHIVED
        tenant = archiving.tenant(tenant_id)
        first = tenant.get_event(recorded[0].event_id)
        assert first is not None
        ref = ColdRef.parse(first.blob_ref or "")
        assert (
            archiving.payloads is not None and archiving.payloads.segment_tier(ref.container, ref.segment) == "Archive"
        )
        with pytest.raises(PayloadArchived) as archived:
            tenant.payload_of(first)
        assert archived.value.segment == ref.segment and archived.value.retry_after_seconds > 0
        # Azurite rehydrates at once (Azure takes hours): the next read gets the exact bytes.
        assert tenant.payload_of(first) == recorded[0].payload


def test_an_archiver_killed_inside_its_transaction_loses_nothing_and_the_next_run_finishes(
    cold: tuple[EventStore, str, list[Any]], settings: Settings, azurite: Any
) -> None:
    store, tenant_id, recorded = cold
    config = retention_settings(settings, azurite)
    # A second process archives the first batch and is killed (SIGKILL) after its UPDATE, before its commit.
    script = textwrap.dedent(
        f"""
        import os, signal
        from datetime import datetime
        from eventstore import EventStore, Settings
        from eventstore.retention.archiver import Archiver
        from eventstore.store import maintenance_path
        from pydantic import SecretStr

        def killed(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        maintenance_path.append_events = killed  # the record, appended after the UPDATE, before the commit
        settings = Settings.model_validate_json({config.model_dump_json()!r})
        settings = settings.model_copy(update={{"archive_key": SecretStr({KEY!r})}})
        now = datetime.fromisoformat({NOW.isoformat()!r})
        with EventStore(settings) as store:
            Archiver(store, settings, clock=lambda: now).run_tenant({tenant_id!r})
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, cwd=PROJECT_ROOT, capture_output=True, timeout=120
    )
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    rows = _rows(store, tenant_id)
    assert all(rows[e.event_id][0] for e in recorded)  # every payload still in its row
    assert store.tenant(tenant_id).read_stream(MAINTENANCE_STREAM_ID) == []

    run = Archiver(store, config, clock=lambda: NOW).run_tenant(tenant_id)
    assert run.events == 2 * ARCHIVED
    tenant = store.tenant(tenant_id)
    for new in recorded:
        found = tenant.get_event(new.event_id)
        assert found is not None and tenant.payload_of(found) == new.payload


def test_two_archivers_at_once_move_each_payload_once(cold: tuple[EventStore, str, list[Any]]) -> None:
    store, tenant_id, _ = cold
    archiver = Archiver(store, store.settings, clock=lambda: NOW)
    retention = store.retention(tenant_id)
    with retention.lock() as first:
        assert first
        assert archiver.run_tenant(tenant_id).locked is False  # the other one waits for the next night
    assert archiver.run_tenant(tenant_id).events == 2 * ARCHIVED


def test_the_trace_view_gives_up_its_copies_and_reads_step_data_from_the_archived_events(
    settings: Settings, azurite: Any
) -> None:
    config = retention_settings(settings, azurite)
    old_moment = datetime(2026, 7, 20, 10, 0, tzinfo=UTC)
    with EventStore(config, clock=lambda: old_moment) as old, EventStore(config) as store:
        tenant_id = random_tenant_id()
        old.onboard_tenant(tenant_id)
        step = {"executionId": "exec-1", "stepId": "s1", "name": "send-email", "attempt": 1}
        trace = [
            ("ExecutionStarted", {"executionId": "exec-1"}),
            ("StepStarted", {**step, "input": {"to": "person@contoso.example"}}),
            ("StepCompleted", {**step, "output": {"messageId": "m-42"}}),
            ("ExecutionCompleted", {"executionId": "exec-1"}),
        ]
        old.tenant(tenant_id).append(
            instance_stream_id("deal-1"),
            [event(body, kind, workflow_id="deals", workflow_instance_id="deal-1") for kind, body in trace],
        )
        before = read_trace(store, tenant_id, "exec-1")
        assert before is not None and before.steps[0].input == '{"to":"person@contoso.example"}'
        schema = store.tenant(tenant_id).placement.schema_name
        with store.pools.owner("default").connection() as conn:
            copies = sql.SQL("SELECT count(*) FROM {} WHERE input IS NOT NULL OR output IS NOT NULL").format(
                sql.Identifier(schema, "view_trace_steps")
            )
            assert conn.execute(copies).fetchone() == (1,)

            run = Archiver(store, config, clock=lambda: NOW).run_tenant(tenant_id)
            assert run.views == {"executions": 2} and run.events == 4
            assert conn.execute(copies).fetchone() == (0,)  # the view keeps references only
        after = read_trace(store, tenant_id, "exec-1")
        assert after is not None
        assert (after.steps[0].input, after.steps[0].output) == (before.steps[0].input, before.steps[0].output)


def test_a_month_finished_by_an_earlier_run_is_compacted_by_the_next(cold: tuple[EventStore, str, list[Any]]) -> None:
    store, tenant_id, _ = cold
    keep = store.settings.model_copy(update={"retention_compact": False})
    first = Archiver(store, keep, clock=lambda: NOW).run_tenant(tenant_id)
    assert first.events == 2 * ARCHIVED and first.compacted == []
    second = Archiver(store, store.settings, clock=lambda: NOW).run_tenant(tenant_id)
    assert second.events == 0 and [p for p, _, _ in second.compacted] == ["events_2026m07"]
