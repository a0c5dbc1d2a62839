"""The archiver: for each tenant, the views give up their own copies of payload content recorded before the
cutoff (step inputs and outputs, read from their events from then on); then the payloads recorded before the
cutoff that are still held in their rows go, a batch at a time, into a sealed segment in the tenant's cold
container (written and read back first), and in one maintenance transaction their rows keep only the
reference, the wrapped data key and the metadata, and a `PayloadsArchived` event records the batch
(docs/retention.md).

Killed at any point, nothing is lost: before the commit the rows still hold their payloads (a segment no row
points at may be left behind), after it the segment holds them. The next run takes what is still held.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from eventstore.errors import EventStoreError
from eventstore.event_types import EventType
from eventstore.models import NewEvent
from eventstore.retention.records import maintenance_record
from eventstore.settings import Settings
from eventstore.store import ArchiveKeys, BlobPayloads, ColdRef, EventStore, HeldPayload, TenantRetention
from eventstore.views import VIEWS, ViewRunner

log = logging.getLogger(__name__)

SOURCE = "eventstore-retention"
Progress = Callable[[int, int], None]
"""(events moved so far in this tenant, events due at the start)."""


class RetentionNotConfigured(EventStoreError):
    """Retention cannot run: no archive key, or no Blob storage, is configured."""


@dataclass
class TenantRun:
    tenant_id: str
    cutoff: datetime
    views: dict[str, int | None] = field(default_factory=dict)
    """Per view that keeps copies of payload content: the rows that gave them up (None: the view was busy)."""
    due: int = 0
    """Events past the cutoff still holding their payload when the run began."""
    due_bytes: int = 0
    events: int = 0
    bytes: int = 0
    segments: list[str] = field(default_factory=list)
    rewrapped: int = 0
    """Data keys wrapped again under the current archive key (after a rotation)."""
    orphans_deleted: int = 0
    """Cold segments no record names (left by a killed archiver), deleted."""
    hot_blobs_deleted: int = 0
    """Large payloads' blobs in the hot container deleted once sealed in a segment."""
    compacted: list[tuple[str, int, int]] = field(default_factory=list)
    """Partitions rewritten after all their payloads moved: (name, bytes before, bytes after)."""
    locked: bool = True
    """False: another archiver held this tenant; nothing was done."""


@dataclass
class RetentionRun:
    tenants: list[TenantRun] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Archiver:
    def __init__(
        self,
        store: EventStore,
        settings: Settings,
        *,
        requested_by: str = SOURCE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings
        self.requested_by = requested_by
        self.clock = clock

    def cutoff(self) -> datetime:
        return self.clock() - timedelta(days=self.settings.retention_days)

    def run(
        self, tenant_ids: list[str] | None = None, *, dry_run: bool = False, seconds: float | None = None
    ) -> RetentionRun:
        """Every tenant (or those named); one tenant's trouble is logged and said, the others go on. With
        `seconds`, no batch starts after that long (a timer's run has a time limit): the rest is the next
        run's."""
        result = RetentionRun()
        deadline = time.monotonic() + seconds if seconds is not None else None
        for tenant_id in tenant_ids or [p.tenant_id for p in self.store.tenants()]:
            if deadline is not None and time.monotonic() >= deadline:
                result.errors.append(f"{tenant_id}: not started: the run's time was up (the next run goes on)")
                continue
            try:
                result.tenants.append(self.run_tenant(tenant_id, dry_run=dry_run, deadline=deadline))
            except EventStoreError as exc:
                log.error("retention: tenant %s: %s", tenant_id, exc)
                result.errors.append(f"{tenant_id}: {exc}")
        return result

    def run_tenant(
        self,
        tenant_id: str,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
        deadline: float | None = None,
    ) -> TenantRun:
        retention = self.store.retention(tenant_id)
        cutoff = self.cutoff()
        figures = retention.figures(cutoff)
        run = TenantRun(retention.tenant_id, cutoff, due=figures.held_before, due_bytes=figures.held_bytes_before)
        if dry_run:
            return run
        # The views' own copies follow the same policy: from now on they are read from their events.
        run.views = ViewRunner(self.store, VIEWS).age_out(retention.tenant_id, cutoff)
        with retention.lock() as locked:
            if not locked:
                run.locked = False
                return run
            if figures.held_before:
                keys, payloads = self._configured()
                while held := retention.held(cutoff, self.settings.retention_segment_events):
                    batch = self._filled(held, payloads)
                    self._archive(retention, batch, keys, payloads, cutoff, run)
                    if progress:
                        progress(run.events, run.due)
                    if deadline is not None and time.monotonic() >= deadline:
                        return run
            # Also when nothing was left to move: a month finished by an earlier run is compacted now.
            # VACUUM FULL needs the table's owner: an app deployed without the owner DSN leaves it to
            # `eventstore retention run` from the deploy job (docs/retention.md).
            if self.settings.retention_compact and self.store.pools.has_owner(retention.placement.dsn_name):
                self._compact(retention, cutoff, run, deadline)
            current = self.store.archive_keys()
            if current is not None and current.previous_kids:
                self._rewrap(retention, current, run, deadline)
            if self.store.payloads is not None:
                self._delete_orphans(retention, self.store.payloads, run)
        return run

    def _rewrap(self, retention: TenantRetention, keys: ArchiveKeys, run: TenantRun, deadline: float | None) -> None:
        """After a rotation: the data keys still wrapped under a previous archive key, wrapped again under the
        current one (the rows change; no segment is read or rewritten), a batch per transaction, each recorded."""
        while batch := retention.wrapped_under(keys.previous_kids, self.settings.retention_segment_events):
            rewrapped = [keys.rewrap(k.wrapped, k.event_id) for k in batch]
            body = {
                "events": len(batch), "fromKeys": sorted({k.wrapped[:8].hex() for k in batch}),
                "toKey": keys.kid.hex(), "requestedBy": self.requested_by,
                "reason": "retention: the archive key was rotated (EVENTSTORE_ARCHIVE_PREVIOUS_KEYS)",
            }  # fmt: skip
            event = maintenance_record(EventType.DATA_KEYS_REWRAPPED, body, by=self.requested_by, source=SOURCE)
            run.rewrapped += retention.rewrap(batch, rewrapped, event)
            if deadline is not None and time.monotonic() >= deadline:
                return

    def _delete_orphans(self, retention: TenantRetention, payloads: BlobPayloads, run: TenantRun) -> None:
        """Delete the cold segments no `PayloadsArchived` record names: an archiver killed between writing one
        and committing its batch left it, and no row points at it. Under the tenant's archiver lock, and only
        once a segment is older than the grace period, so that no batch still on its way loses its segment."""
        container = retention.cold_container
        recorded = retention.recorded_segments()
        now = datetime.now(UTC)  # the blobs' own clock, not the archiver's (which tests move)
        grace = timedelta(seconds=self.settings.retention_orphan_grace_seconds)
        orphans = [
            (name, size)
            for name, modified, size in payloads.list_segments(container)
            if name not in recorded and now - modified >= grace
        ]
        if not orphans:
            return
        body = {
            "container": container, "segments": [n for n, _ in orphans], "bytes": sum(b for _, b in orphans),
            "requestedBy": self.requested_by,
            "reason": "retention: segments no PayloadsArchived record names (an archiver stopped before its commit)",
        }  # fmt: skip
        # Recorded first: killed in between, the next run deletes what is left and records it again.
        retention.record(maintenance_record(EventType.SEGMENTS_DELETED, body, by=self.requested_by, source=SOURCE))
        for name, _ in orphans:
            payloads.delete(f"{container}/{name}")
        run.orphans_deleted += len(orphans)
        log.info("retention: tenant %s: %d orphan segment(s) deleted from %s", retention.tenant_id, len(orphans),
                 container)  # fmt: skip

    def _compact(self, retention: TenantRetention, cutoff: datetime, run: TenantRun, deadline: float | None) -> None:
        """Give back the space of each month whose payloads have all moved (the rows stay: VACUUM FULL)."""
        owner = self.store.pools.owner(retention.placement.dsn_name)
        for partition in retention.compactable(cutoff):
            if deadline is not None and time.monotonic() >= deadline:
                return

            def record(before: int, after: int, seconds: float, partition: str = partition) -> NewEvent:
                body = {
                    "partition": partition, "bytesBefore": before, "bytesAfter": after,
                    "lockedSeconds": round(seconds, 3), "requestedBy": self.requested_by,
                    "reason": "retention: every payload of the month moved to cold storage",
                }  # fmt: skip
                return maintenance_record(EventType.PARTITION_COMPACTED, body, by=self.requested_by, source=SOURCE)

            event = retention.compact(owner, partition, record)
            body = json.loads(event.payload)
            run.compacted.append((partition, body["bytesBefore"], body["bytesAfter"]))
            log.info("retention: tenant %s: partition %s compacted from %d to %d bytes",
                     retention.tenant_id, partition, body["bytesBefore"], body["bytesAfter"])  # fmt: skip

    def _filled(self, held: list[HeldPayload], payloads: BlobPayloads) -> list[HeldPayload]:
        """The first of `held` that fit one segment (at least one), each large payload read from its hot blob
        and verified: a blob that is missing or altered stops the run, which says so (never skipped)."""
        budget = self.settings.retention_segment_bytes
        batch: list[HeldPayload] = []
        total = 0
        for item in held:
            total += item.size
            if batch and total > budget:
                break
            if item.payload is not None:
                batch.append(item)
            else:
                assert item.blob_ref is not None
                batch.append(replace(item, payload=payloads.get(item.blob_ref, item.payload_sha256)))
        return batch

    def _configured(self) -> tuple[ArchiveKeys, BlobPayloads]:
        keys = self.store.archive_keys()
        if keys is None:
            raise RetentionNotConfigured(
                "retention needs an archive key: EVENTSTORE_ARCHIVE_KEY (Key Vault in Azure) or "
                "EVENTSTORE_ARCHIVE_KEY_FILE"
            )
        payloads = self.store.payloads
        if payloads is None:
            raise RetentionNotConfigured("retention needs Blob storage (EVENTSTORE_BLOB_CONNECTION_STRING)")
        return keys, payloads

    def _archive(
        self,
        retention: TenantRetention,
        batch: list[HeldPayload],
        keys: ArchiveKeys,
        payloads: BlobPayloads,
        cutoff: datetime,
        run: TenantRun,
    ) -> None:
        container = retention.cold_container
        name = f"segments/{batch[0].global_position:020d}-{batch[-1].global_position:020d}-{uuid4().hex[:12]}.seg"
        parts: list[bytes] = []
        refs: list[str] = []
        wrapped: list[bytes] = []
        manifest = hashlib.sha256()
        offset = 0
        for held in batch:
            assert held.payload is not None  # filled
            entry, key = keys.seal(held.payload, held.event_id)
            ref = ColdRef(container, name, offset, len(entry))
            parts.append(entry)
            refs.append(str(ref))
            wrapped.append(key)
            manifest.update(f"{held.event_id} {held.payload_sha256.hex()} {offset} {len(entry)}\n".encode())
            offset += len(entry)
        segment = b"".join(parts)
        tier = self.settings.retention_tier
        payloads.put_segment(container, name, segment, tier)
        moved = sum(h.size for h in batch)
        record = {
            "segment": name,
            "container": container,
            "tier": tier,
            "events": len(batch),
            "bytes": moved,
            "segmentBytes": len(segment),
            "segmentSha256": hashlib.sha256(segment).hexdigest(),
            "manifestSha256": manifest.hexdigest(),
            "firstPosition": batch[0].global_position,
            "lastPosition": batch[-1].global_position,
            "recordedFrom": batch[0].recorded_at.isoformat(),
            "recordedTo": batch[-1].recorded_at.isoformat(),
            "cutoff": cutoff.isoformat(),
            "retentionDays": self.settings.retention_days,
            "requestedBy": self.requested_by,
            "reason": f"retention: payloads recorded more than {self.settings.retention_days} days ago",
        }
        event = maintenance_record(EventType.PAYLOADS_ARCHIVED, record, by=self.requested_by, source=SOURCE)
        retention.archive(batch, refs, wrapped, event)
        # The large payloads' hot blobs, now sealed in the segment, go once no row points at them (the same bytes
        # appended again since keep theirs).
        for hot in retention.blobs_unreferenced([h.blob_ref for h in batch if h.blob_ref is not None]):
            payloads.delete(hot)
            run.hot_blobs_deleted += 1
        run.events += len(batch)
        run.bytes += moved
        run.segments.append(name)
        log.info("retention: tenant %s: %d payloads (%d bytes) into %s/%s (%s)",
                 retention.tenant_id, len(batch), moved, container, name, tier)  # fmt: skip
