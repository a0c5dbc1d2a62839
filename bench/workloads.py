"""The store's side of every workload: appends and reads through the public `EventStore` API."""

from __future__ import annotations

import itertools
import secrets
from uuid import uuid4

from bench.payloads import envelope
from bench.timing import Op
from eventstore import START, EventStore, EventType, NewEvent, Settings, StreamState, TenantEvents


def new_tenant_id() -> str:
    """A fresh tenant id (64 lowercase hex characters), so runs never share streams."""
    return secrets.token_hex(32)


def new_events(count: int) -> list[NewEvent]:
    return [NewEvent(event_id=uuid4(), event_type=EventType.TRIGGER_RECEIVED, payload=envelope()) for _ in range(count)]


class StoreBench:
    """One store, two fresh tenants: one that is written to, one holding the stream that is read."""

    def __init__(self, dsn: str, read_events: int) -> None:
        self.store = EventStore(Settings(database_url=dsn, pool_max_size=8))
        self.write_tenant_id = new_tenant_id()
        self.read_tenant_id = new_tenant_id()
        self.store.onboard_tenant(self.write_tenant_id)
        self.store.onboard_tenant(self.read_tenant_id)
        self.writes: TenantEvents = self.store.tenant(self.write_tenant_id)
        self.reads: TenantEvents = self.store.tenant(self.read_tenant_id)
        self.read_stream_id = "read-" + secrets.token_hex(4)
        self.read_events = read_events
        self._new_streams = itertools.count(1)

    def populate_reads(self) -> None:
        """The stream that is read: `read_events` events, appended 100 at a time."""
        remaining = self.read_events
        while remaining:
            count = min(100, remaining)
            self.reads.append(self.read_stream_id, new_events(count), StreamState.ANY)
            remaining -= count

    def close(self) -> None:
        self.store.close()

    # --- writes -------------------------------------------------------------------------------------

    def append_op(self, stream_id: str, batch: int) -> Op:
        """Append `batch` events per call to `stream_id`."""
        tenant = self.writes

        def op() -> int:
            tenant.append(stream_id, new_events(batch), StreamState.ANY)
            return batch

        return op

    def append_new_stream_op(self) -> Op:
        """Append 1 event per call, each to a stream of its own."""
        tenant = self.writes
        streams = self._new_streams
        prefix = "new-" + secrets.token_hex(4) + "-"

        def op() -> int:
            tenant.append(f"{prefix}{next(streams)}", new_events(1), StreamState.ANY)
            return 1

        return op

    # --- reads --------------------------------------------------------------------------------------

    def read_stream_op(self) -> Op:
        """Read the whole stream in one call, payloads as stored."""
        tenant, stream_id, expected = self.reads, self.read_stream_id, self.read_events

        def op() -> int:
            events = tenant.read_stream(stream_id, from_sequence=1, limit=expected)
            if len(events) != expected:
                raise AssertionError(f"read {len(events)} events, expected {expected}")
            return len(events)

        return op

    def read_all_op(self, page_size: int = 1000) -> Op:
        """Read the read tenant's all-stream from the start, page by page."""
        tenant, expected = self.reads, self.read_events

        def op() -> int:
            count = 0
            checkpoint = START
            while True:
                page = tenant.read_all(checkpoint, limit=page_size)
                count += len(page.events)
                checkpoint = page.next_checkpoint
                if not page.more:
                    break
            if count != expected:
                raise AssertionError(f"read {count} events from the all-stream, expected {expected}")
            return count

        return op
