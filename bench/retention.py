"""`python -m bench.retention [--dsn DSN] [--events 1000000] [--quick]`: what retention gives back.

One tenant in a scratch database; `--events` events of the Marain trigger envelope's shape (`eventstore_local/
samples/envelope-trigger.json`, about 700 bytes, a fresh id each) recorded in one past month through the
store (batches of 1,000), beside a sliver of recent events; Azurite (in memory) as the cold container.
Then the archiver (`Archiver.run_tenant`, the default 1,000 events per segment, the Cool tier) moves the old
month's payloads and compacts its partition. Measured: the bytes of the tenant's events in PostgreSQL (all
partitions with their indexes and TOAST, `pg_total_relation_size`) before, after archiving (before the
rewrite) and after compacting; the archiver's throughput; how long the partition's reads waited (its
VACUUM FULL); the bytes the segments hold. Prints a table; writes bench/results/retention-latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pydantic import SecretStr

from bench.facts import code_facts, server_facts
from eventstore import EventStore, EventType, NewEvent, Settings
from eventstore.retention.archiver import Archiver
from eventstore.store import ArchiveKeys
from eventstore_local.samples import sample_bytes
from eventstore_local.standins.azurite import Azurite

RESULTS = Path(__file__).resolve().parent / "results" / "retention-latest.json"
DSN_VARIABLE = "EVENTSTORE_BENCH_DATABASE_URL"
OLD = datetime(2026, 5, 14, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BATCH = 1000


def envelope(tenant_id: str) -> bytes:
    document = json.loads(sample_bytes("envelope-trigger.json"))
    document.update(tenantId=tenant_id, operationId=str(uuid4()))
    document["trigger"]["id"] = str(uuid4())
    return json.dumps(document, indent=2).encode()


def tenant_bytes(conn: psycopg.Connection[Any], schema: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_inherits i JOIN pg_class c"
        " ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
        (sql.Identifier(schema, "events").as_string(None),),
    ).fetchone()
    return int(row[0]) if row else 0


def run(dsn: str, events: int, output: Path) -> int:
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.retention", *sys.argv[1:]]),
        "events": events,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        **code_facts(),
        **server_facts(dsn),
    }
    with Azurite(in_memory=True) as azurite:
        settings = Settings(
            database_url=dsn, blob_connection_string=azurite.connection_string,
            archive_key=SecretStr(ArchiveKeys.new_key_text()), retention_days=90,
        )  # fmt: skip
        with EventStore(settings, clock=lambda: OLD) as old, EventStore(settings) as store:
            tenant_id = uuid4().hex + uuid4().hex
            old.onboard_tenant(tenant_id)
            tenant = old.tenant(tenant_id)
            began = time.perf_counter()
            for start in range(0, events, BATCH):
                batch = [
                    NewEvent(event_id=uuid4(), event_type=EventType.TRIGGER_RECEIVED, payload=envelope(tenant_id))
                    for _ in range(min(BATCH, events - start))
                ]
                tenant.append("audit", batch)
                if start and start % 100_000 == 0:
                    print(f"  recorded {start:,} events", file=sys.stderr, flush=True)
            record_seconds = time.perf_counter() - began
            schema = tenant.placement.schema_name
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(schema, "events")))
                before = tenant_bytes(conn, schema)
                keep = settings.model_copy(update={"retention_compact": False})
                began = time.perf_counter()
                moved = Archiver(store, keep, requested_by="bench", clock=lambda: NOW).run_tenant(tenant_id)
                archive_seconds = time.perf_counter() - began
                conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(schema, "events")))
                archived = tenant_bytes(conn, schema)
                began = time.perf_counter()
                compacted = Archiver(store, settings, requested_by="bench", clock=lambda: NOW).run_tenant(tenant_id)
                compact_seconds = time.perf_counter() - began
                after = tenant_bytes(conn, schema)
            records = store.tenant(tenant_id).read_stream("maintenance", limit=100_000)  # a record per segment
            locked = [
                json.loads(r.payload or b"")["lockedSeconds"]
                for r in records
                if r.event_type == EventType.PARTITION_COMPACTED
            ]
            segments_bytes = sum(
                json.loads(r.payload or b"")["segmentBytes"]
                for r in records
                if r.event_type == EventType.PAYLOADS_ARCHIVED
            )
    report = {
        "meta": meta,
        "record_seconds": round(record_seconds, 1),
        "bytes_before": before,
        "bytes_after_archiving_and_vacuum": archived,
        "bytes_after_compacting": after,
        "compacted": compacted.compacted,
        "compact_seconds": round(compact_seconds, 1),
        "archived_events": moved.events,
        "archived_payload_bytes": moved.bytes,
        "segments": len(moved.segments),
        "segments_bytes": segments_bytes,
        "archive_seconds": round(archive_seconds, 1),
        "events_per_second": round(moved.events / archive_seconds) if archive_seconds else None,
        "partition_locked_seconds": locked,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))
    mb = 1024 * 1024
    print(
        f"retention of {moved.events:,} events ({moved.bytes / mb:,.0f} MB of payloads), {len(moved.segments)} segments"
        f"\n  PostgreSQL, the tenant's events: before {before / mb:,.0f} MB; archived and vacuumed"
        f" {archived / mb:,.0f} MB; compacted {after / mb:,.0f} MB ({after / before:.0%} of before)"
        f"\n  archive: {archive_seconds:,.1f} s ({report['events_per_second']:,} events/s); compact:"
        f" {compact_seconds:,.1f} s, the month's reads waited {sum(locked):.1f} s (VACUUM FULL)"
        f"\n  cold segments: {segments_bytes / mb:,.0f} MB; code {meta.get('git_head', '?')}; results in {output}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", help=f"PostgreSQL DSN (default: ${DSN_VARIABLE})")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 events: a smoke run")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    dsn = args.dsn or os.environ.get(DSN_VARIABLE)
    if not dsn:
        parser.error(f"--dsn or ${DSN_VARIABLE} is needed")
    scratch = f"bench_retention_{uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    try:
        return run(make_conninfo(dsn, dbname=scratch), 20_000 if args.quick else args.events, args.output)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(scratch)))


if __name__ == "__main__":
    sys.exit(main())
