"""One tenant's events: every read and write is bound to that tenant's schema, and only that one."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from uuid import UUID

from eventstore.errors import (
    PayloadArchived,
    PayloadIntegrityError,
    PayloadMissing,
    PayloadTooLarge,
    StoreUnavailable,
)
from eventstore.event_types import EventType
from eventstore.models import (
    START,
    AllStreamPage,
    AppendResult,
    Checkpoint,
    ErasureMark,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StreamState,
)
from eventstore.settings import Settings
from eventstore.store.append_events import append_events, stream_version
from eventstore.store.blob_payloads import BlobPayloads, verify
from eventstore.store.cold_payloads import REHYDRATION_RETRY_SECONDS, ArchiveKeys, ColdRef, archive_key_of, is_cold
from eventstore.store.connection import StorePool, run
from eventstore.store.list_streams import list_streams
from eventstore.store.payload_problems import (
    PayloadProblem,
    Problem,
    blob_refs_after,
    clear_problems,
    count_problems,
    list_problems,
    record_problem,
)
from eventstore.store.read_all import read_all_after
from eventstore.store.read_event import marks_of, read_event
from eventstore.store.read_stream import read_stream
from eventstore.store.search_events import search_events
from eventstore.store.tenant_erasure import erasure_of, is_erased
from eventstore.tenancy import TenantPlacement

Clock = Callable[[], datetime]

_CHECK_PAGE = 500

log = logging.getLogger(__name__)


class TenantEvents:
    """Append and read one tenant's streams. Obtain one with `EventStore.tenant(tenant_id)`.

    `clock`, when given, stamps events instead of the database's now() (tests of month boundaries);
    `blobs` holds payloads over the inline limit (None: no Blob storage configured)."""

    def __init__(
        self,
        placement: TenantPlacement,
        pool: StorePool,
        settings: Settings,
        *,
        blobs: BlobPayloads | None = None,
        keys: Callable[[], ArchiveKeys | None] = lambda: None,
        clock: Clock | None = None,
    ) -> None:
        self.placement = placement
        self._schema = placement.schema_name
        self._pool = pool
        self._settings = settings
        self._blobs = blobs
        self._keys = keys
        self._clock = clock

    @property
    def tenant_id(self) -> str:
        return self.placement.tenant_id

    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        """Append atomically; returns sequence numbers and global positions (the first ones, on a repeat)."""
        settings = self._settings
        recorded_at = self._clock() if self._clock else None
        blob_refs = self._put_large_payloads(events)
        return run(
            self._pool,
            lambda conn: append_events(
                conn,
                self._schema,
                stream_id,
                events,
                expected_version,
                inline_limit=settings.inline_payload_limit,
                max_batch=settings.max_batch_size,
                recorded_at=recorded_at,
                blob_refs=blob_refs,
            ),
            writes=True,
        )

    def _put_large_payloads(self, events: Sequence[NewEvent]) -> dict[UUID, str] | None:
        """Payloads over the inline limit go to the tenant's Blob container first (when one is configured)."""
        settings = self._settings
        large = [e for e in events if isinstance(e, NewEvent) and len(e.payload) > settings.inline_payload_limit]
        if not large:
            return None
        for index, event in enumerate(events):
            if isinstance(event, NewEvent) and len(event.payload) > settings.max_payload_size:
                raise PayloadTooLarge(len(event.payload), settings.max_payload_size, field=f"events[{index}].payload")
        payloads = self._blobs
        if payloads is None:
            return None  # the append refuses them with PayloadTooLarge (inline limit)
        return {
            e.event_id: payloads.put(self.placement.container_name, e.payload, hashlib.sha256(e.payload).digest())
            for e in large
        }

    def get_event(self, event_id: UUID) -> RecordedEvent | None:
        """One event by id, or None."""
        return run(self._pool, lambda conn: read_event(conn, self._schema, event_id))

    def payload_of(self, event: RecordedEvent) -> bytes:
        """The exact payload received (or, once an erasure redacted it, the redacted one), from the row or from
        Blob storage, its SHA-256 verified.

        A payload that is gone (`PayloadMissing`, naming the blob) or altered (`PayloadIntegrityError`) is
        recorded for the tenant's health before the error goes on."""
        return self.payload_and_mark_of(event)[0]

    def payload_and_mark_of(self, event: RecordedEvent) -> tuple[bytes, ErasureMark | None]:
        """As `payload_of`, with the mark of the erasure that redacted the payload (None: as received)."""
        try:
            return self._payload(event, event.payload_sha256), None
        except PayloadMissing as missing:
            self._note_payload_problem(event.event_id, event.blob_ref, "missing")
            raise PayloadMissing(missing.blob_ref, event.event_id) from missing
        except PayloadIntegrityError:
            # Reads leave an erasure's marks out of each event (they are rare, and every column more costs every
            # read of many events): a payload an erasure redacted does not match the hash recorded when it
            # arrived. Look once, and verify it against the hash it was redacted to.
            mark = self.marks([event]).get(event.event_id)
            if mark is not None and mark.redacted_sha256 is not None:
                try:
                    return self._payload(event, mark.redacted_sha256), mark
                except PayloadMissing as missing:
                    self._note_payload_problem(event.event_id, event.blob_ref, "missing")
                    raise PayloadMissing(missing.blob_ref, event.event_id) from missing
                except PayloadIntegrityError:
                    pass
            self._note_payload_problem(event.event_id, event.blob_ref, "mismatch")
            raise

    def _payload(self, event: RecordedEvent, digest: bytes) -> bytes:
        if event.blob_ref is None:
            assert event.payload is not None
            verify(event.payload, digest, f"of event {event.event_id}")
            return event.payload
        if is_erased(event.blob_ref):
            raise run(self._pool, partial(erasure_of, schema=self._schema, event=event))
        payloads = self._blobs
        if payloads is None:
            raise StoreUnavailable(f"event {event.event_id} keeps its payload in Blob storage, which is not configured")
        if is_cold(event.blob_ref):
            return self._cold_payload(event, payloads, digest)
        return payloads.get(event.blob_ref, digest)

    def marks(self, events: Sequence[RecordedEvent]) -> dict[UUID, ErasureMark]:
        """Of `events`, those an erasure redacted or removed, with its mark (one query for the lot)."""
        if not events:
            return {}
        return run(self._pool, lambda conn: marks_of(conn, self._schema, events))

    def _cold_payload(self, event: RecordedEvent, payloads: BlobPayloads, digest: bytes) -> bytes:
        """An archived payload: its range of the cold segment, opened with the data key kept in its row."""
        assert event.blob_ref is not None
        ref = ColdRef.parse(event.blob_ref)
        keys = self._keys()
        if keys is None:
            raise StoreUnavailable(
                f"event {event.event_id} was archived; reading it needs the archive key (EVENTSTORE_ARCHIVE_KEY)"
            )
        wrapped = run(self._pool, partial(archive_key_of, schema=self._schema, event=event))
        if wrapped is None:
            raise PayloadIntegrityError(f"the archived payload of event {event.event_id} has no data key")
        entry = payloads.get_range(ref.container, ref.segment, ref.offset, ref.length)
        if entry is None:  # the Archive tier: offline until rehydrated (hours), which this read starts
            status = payloads.rehydrate(ref.container, ref.segment)
            raise PayloadArchived(event.event_id, ref.segment, status, REHYDRATION_RETRY_SECONDS)
        payload = keys.open(entry, wrapped, event.event_id)
        verify(payload, digest, f"of event {event.event_id} (archived)")
        return payload

    def _note_payload_problem(self, event_id: UUID, blob_ref: str | None, problem: Problem) -> None:
        # Best effort: the caller's answer is the lost payload, whether or not health hears of it.
        try:
            run(self._pool, lambda conn: record_problem(conn, self._schema, event_id, blob_ref, problem), writes=True)
        except StoreUnavailable:
            log.exception("could not record the %s payload of event %s", problem, event_id)

    def payload_problems(self, limit: int = 100) -> list[PayloadProblem]:
        """Events whose payload was found missing or altered, the most recently seen first."""
        return run(self._pool, lambda conn: list_problems(conn, self._schema, limit))

    def payload_problem_count(self) -> int:
        return run(self._pool, lambda conn: count_problems(conn, self._schema))

    def check_payloads(self) -> tuple[int, int]:
        """Look for every Blob-backed payload in Blob storage (a HEAD each): record the missing ones, clear
        those found again (restored). Returns (payloads checked, payloads missing)."""
        payloads = self._blobs
        if payloads is None:
            raise StoreUnavailable("Blob storage is not configured")
        checked = missing = 0
        position = 0
        while True:
            page = run(
                self._pool, partial(blob_refs_after, schema=self._schema, after_position=position, limit=_CHECK_PAGE)
            )
            present = []
            for _, event_id, blob_ref in page:
                if self._blob_is_there(payloads, blob_ref):
                    present.append(event_id)
                else:
                    missing += 1
                    self._note_payload_problem(event_id, blob_ref, "missing")
            if present:
                run(self._pool, partial(clear_problems, schema=self._schema, event_ids=present), writes=True)
            checked += len(page)
            if len(page) < _CHECK_PAGE:
                return checked, missing
            position = page[-1][0]

    @staticmethod
    def _blob_is_there(payloads: BlobPayloads, blob_ref: str) -> bool:
        """A hot payload's blob, or an archived payload's segment (one HEAD); True for what has no blob."""
        if is_cold(blob_ref):
            ref = ColdRef.parse(blob_ref)
            return payloads.segment_tier(ref.container, ref.segment) is not None
        if is_erased(blob_ref):  # no blob any more, on purpose
            return True
        return payloads.exists(blob_ref)

    def search(
        self,
        after: Checkpoint = START,
        limit: int = 100,
        *,
        recorded_from: datetime | None = None,
        recorded_to: datetime | None = None,
        event_types: Sequence[str] = (),
        workflow_id: str | None = None,
        stream_id: str | None = None,
    ) -> AllStreamPage:
        """Events matching the filters, in commit-safe order after `after`."""
        types = [EventType.parse(t).value for t in event_types]
        return run(
            self._pool,
            lambda conn: search_events(
                conn,
                self._schema,
                after,
                limit,
                recorded_from=recorded_from,
                recorded_to=recorded_to,
                event_types=types,
                workflow_id=workflow_id,
                stream_id=stream_id,
            ),
        )

    def list_stream_ids(self, prefix: str, after: str = "", limit: int = 200) -> list[str]:
        """Ids of streams starting with `prefix`, in id order, after `after` (keyset pages)."""
        return run(self._pool, partial(list_streams, schema=self._schema, prefix=prefix, after=after, limit=limit))

    def stream_version(self, stream_id: str) -> int:
        """The stream's version (its last sequence number); 0 when it has no events."""
        return run(self._pool, lambda conn: stream_version(conn, self._schema, stream_id))

    def read_stream(
        self, stream_id: str, from_sequence: int | None = None, *, backwards: bool = False, limit: int = 1000
    ) -> list[RecordedEvent]:
        return run(
            self._pool,
            lambda conn: read_stream(conn, self._schema, stream_id, from_sequence, backwards=backwards, limit=limit),
        )

    def read_all(self, after: Checkpoint = START, limit: int = 1000) -> AllStreamPage:
        """Events committed after `after`, in commit-safe order, with the next checkpoint."""
        return run(self._pool, lambda conn: read_all_after(conn, self._schema, after, limit))
