"""One tenant's events: every read and write is bound to that tenant's schema, and only that one."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from eventstore.errors import InvalidInput
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
from eventstore.state import fold
from eventstore.store.append_events import append_events, stream_version
from eventstore.store.connection import translated_errors
from eventstore.store.read_all import read_all_after
from eventstore.store.read_stream import read_stream
from eventstore.store.streams import instance_stream_id
from eventstore.tenancy import TenantPlacement

if TYPE_CHECKING:
    from eventstore.store.event_store import EventStore

_REPLAY_PAGE = 1000


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
        with translated_errors(), self._pool.connection() as conn:
            return append_events(
                conn,
                self._schema,
                stream_id,
                events,
                expected_version,
                inline_limit=settings.inline_payload_limit,
                max_batch=settings.max_batch_size,
                recorded_at=recorded_at,
            )

    def stream_version(self, stream_id: str) -> int:
        """The stream's version (its last sequence number); 0 when it has no events."""
        with translated_errors(), self._pool.connection() as conn:
            return stream_version(conn, self._schema, stream_id)

    def read_stream(
        self, stream_id: str, from_sequence: int | None = None, *, backwards: bool = False, limit: int = 1000
    ) -> list[RecordedEvent]:
        with translated_errors(), self._pool.connection() as conn:
            return read_stream(conn, self._schema, stream_id, from_sequence, backwards=backwards, limit=limit)

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
        with translated_errors(), self._pool.connection() as conn:
            return read_all_after(conn, self._schema, after, limit)

    def ensure_partitions(self, months_ahead: int | None = None, now: datetime | None = None) -> list[str]:
        return self._store.ensure_partitions_for(self.placement, months_ahead, now)
