"""One tenant's events: every read and write is bound to that tenant's schema, and only that one."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING
from uuid import UUID

from eventstore.errors import InvalidInput, PayloadIntegrityError, PayloadMissing, PayloadTooLarge, StoreUnavailable
from eventstore.event_types import EventType
from eventstore.models import (
    START,
    AllStreamPage,
    AppendResult,
    Checkpoint,
    ExpectedVersion,
    InstanceState,
    NewEvent,
    RecordedEvent,
    StreamState,
)
from eventstore.payloads import verify
from eventstore.state import fold
from eventstore.store.append_events import append_events, stream_version
from eventstore.store.connection import run, translated_errors
from eventstore.store.feed_checkpoints import (
    DeadLetter,
    SinkState,
    add_dead_letters,
    count_dead_letters,
    load_checkpoint,
    save_checkpoint,
    sink_states,
)
from eventstore.store.feed_lock import try_lock_feed, unlock_feed
from eventstore.store.feed_session import FeedSession
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
from eventstore.store.read_event import read_event
from eventstore.store.read_feed import (
    FeedEntry,
    PendingStats,
    any_after,
    pending_after,
    read_dead_letters,
    read_feed_after,
)
from eventstore.store.read_stream import read_stream
from eventstore.store.search_events import search_events
from eventstore.store.streams import instance_stream_id
from eventstore.tenancy import TenantPlacement

if TYPE_CHECKING:
    from eventstore.store.event_store import EventStore

_REPLAY_PAGE = 1000
_CHECK_PAGE = 500

log = logging.getLogger(__name__)


class TenantEvents:
    """Append and read one tenant's streams. Obtain one with `EventStore.tenant(tenant_id)`."""

    def __init__(self, store: EventStore, placement: TenantPlacement) -> None:
        self._store = store
        self.placement = placement
        self._schema = placement.schema_name
        self._pool = store.pools.app(placement.dsn_name)

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
        settings = self._store.settings
        recorded_at = self._store.clock() if self._store.clock else None
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
        settings = self._store.settings
        large = [e for e in events if isinstance(e, NewEvent) and len(e.payload) > settings.inline_payload_limit]
        if not large:
            return None
        for index, event in enumerate(events):
            if isinstance(event, NewEvent) and len(event.payload) > settings.max_payload_size:
                raise PayloadTooLarge(len(event.payload), settings.max_payload_size, field=f"events[{index}].payload")
        payloads = self._store.payloads
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
        """The exact payload received, from the row or from Blob storage, its SHA-256 verified.

        A payload that is gone (`PayloadMissing`, naming the blob) or altered (`PayloadIntegrityError`) is
        recorded for the tenant's health before the error goes on."""
        try:
            if event.blob_ref is None:
                assert event.payload is not None
                verify(event.payload, event.payload_sha256, f"of event {event.event_id}")
                return event.payload
            payloads = self._store.payloads
            if payloads is None:
                raise StoreUnavailable(
                    f"event {event.event_id} keeps its payload in Blob storage, which is not configured"
                )
            data = payloads.get(event.blob_ref, event.payload_sha256)
        except PayloadMissing as missing:
            self._note_payload_problem(event.event_id, event.blob_ref, "missing")
            raise PayloadMissing(missing.blob_ref, event.event_id) from missing
        except PayloadIntegrityError:
            self._note_payload_problem(event.event_id, event.blob_ref, "mismatch")
            raise
        return data

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
        payloads = self._store.payloads
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
                if payloads.exists(blob_ref):
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

    def list_instances(
        self, status: str | None = None, after: str = "", limit: int = 100, scan: int = 1000
    ) -> tuple[list[InstanceState], str | None]:
        """Instances (optionally only those whose rebuilt status is `status`), in instance id order.

        Looks at no more than `scan` instances per call; returns the states found and the instance id to
        continue after, or None when every instance has been looked at. Status comes from the rebuilt
        state, so it is exactly what `rebuild_state` says.
        """
        if limit < 1 or scan < 1:
            raise InvalidInput("limit must be at least 1", field="limit")
        found: list[InstanceState] = []
        cursor = instance_stream_id(after) if after else ""
        prefix = instance_stream_id("x")[:-1]
        while len(found) < limit and scan > 0:
            page = partial(list_streams, schema=self._schema, prefix=prefix, after=cursor, limit=min(scan, 200))
            streams = run(self._pool, page)
            if not streams:
                return found, None
            for stream in streams:
                scan -= 1
                cursor = stream
                state = self.rebuild_state(stream.removeprefix(prefix))
                if status is None or state.status == status:
                    found.append(state)
                    if len(found) == limit:
                        break
        return found, cursor.removeprefix(prefix)

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

    def replay(self, workflow_instance_id: str, from_sequence: int = 1) -> Iterator[RecordedEvent]:
        """The instance's events in sequence order from `from_sequence`, read page by page."""
        stream_id = instance_stream_id(workflow_instance_id)
        if from_sequence < 1:
            raise InvalidInput("from_sequence must be at least 1", field="from_sequence")
        while True:
            page = self.read_stream(stream_id, from_sequence, limit=_REPLAY_PAGE)
            yield from page
            if len(page) < _REPLAY_PAGE:
                return
            from_sequence = page[-1].sequence_number + 1

    def rebuild_state(self, workflow_instance_id: str, at_sequence: int | None = None) -> InstanceState:
        """The instance's state after its event `at_sequence` (default: the latest)."""
        if at_sequence is not None and at_sequence < 0:
            raise InvalidInput("at_sequence must be >= 0", field="at_sequence")
        events = self.replay(workflow_instance_id)
        return fold(workflow_instance_id, events, at_sequence)

    def read_all(self, after: Checkpoint = START, limit: int = 1000) -> AllStreamPage:
        """Events committed after `after`, in commit-safe order, with the next checkpoint."""
        return run(self._pool, lambda conn: read_all_after(conn, self._schema, after, limit))

    def feed_checkpoint(self, sink: str) -> Checkpoint:
        """Where `sink` has got to on the all-stream (START when it has published nothing)."""
        with translated_errors(), self._pool.connection() as conn:
            return load_checkpoint(conn, self._schema, sink)

    def save_feed_checkpoint(self, sink: str, checkpoint: Checkpoint) -> Checkpoint:
        """Move `sink`'s checkpoint forward (never back); returns the stored checkpoint."""
        with translated_errors(), self._pool.connection() as conn:
            return save_checkpoint(conn, self._schema, sink, checkpoint)

    @contextmanager
    def feed_session(self, sink: str) -> Iterator[FeedSession | None]:
        """Hold the publisher lock of this tenant's `sink` for the block, if no other publisher has it:
        yields the session to publish through, or None. One pooled connection, idle between statements."""
        with translated_errors(), self._pool.connection() as conn:
            if not try_lock_feed(conn, self._schema, sink):
                yield None
                return
            try:
                yield FeedSession(conn, self._schema, sink)
            finally:
                released = False
                # A failed unlock must not hide the drain's own exception; the connection is closed below.
                with suppress(Exception):
                    released = unlock_feed(conn, self._schema, sink)
                if not released:
                    # Never hand a connection that may still hold the lock back to the pool: closed, it is
                    # discarded, and the server releases the lock with the session.
                    conn.close()

    @contextmanager
    def feed_lock(self, sink: str) -> Iterator[bool]:
        """As `feed_session`, yielding only whether the lock is held."""
        with self.feed_session(sink) as session:
            yield session is not None

    def read_feed(self, after: Checkpoint, limit: int) -> list[FeedEntry]:
        """Up to `limit` events after `after` in all-stream order, ids and positions only."""
        with translated_errors(), self._pool.connection() as conn:
            return read_feed_after(conn, self._schema, after, limit)

    def feed_waiting(self, after: Checkpoint) -> bool:
        """Whether events after `after` exist that `read_feed` cannot return yet (an older transaction is open)."""
        with translated_errors(), self._pool.connection() as conn:
            return any_after(conn, self._schema, after)

    def feed_pending(self, after: Checkpoint) -> PendingStats:
        with translated_errors(), self._pool.connection() as conn:
            return pending_after(conn, self._schema, after)

    def feed_sink_states(self) -> dict[str, SinkState]:
        with translated_errors(), self._pool.connection() as conn:
            return sink_states(conn, self._schema)

    def feed_dead_letters(self, sink: str, after: Checkpoint = START, limit: int = 1000) -> list[FeedEntry]:
        """Events `sink` refused that no redrive has delivered since, after `after` in all-stream order."""
        with translated_errors(), self._pool.connection() as conn:
            return read_dead_letters(conn, self._schema, sink, after, limit)

    def dead_letter(self, sink: str, letters: Sequence[DeadLetter]) -> None:
        with translated_errors(), self._pool.connection() as conn:
            add_dead_letters(conn, self._schema, sink, letters)

    def dead_letter_count(self, sink: str | None = None) -> int:
        with translated_errors(), self._pool.connection() as conn:
            return count_dead_letters(conn, self._schema, sink)

    def ensure_partitions(self, months_ahead: int | None = None, now: datetime | None = None) -> list[str]:
        return self._store.ensure_partitions_for(self.placement, months_ahead, now)
