"""History pages, one event's exact payload, audit search. Positions in, positions out (the HTTP layer
turns them into opaque continuation tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventstore.errors import InvalidInput, UnknownEvent, UnknownInstance
from eventstore.models import AllStreamPage, Checkpoint, ErasureMark, RecordedEvent, is_json_content_type
from eventstore.store import TenantEvents, instance_stream_id

MAX_PAGE_SIZE = 1000
MAX_SEQUENCE = 2**62
"""The largest sequence number a read accepts (far beyond any stream; keeps arithmetic inside bigint)."""
DEFAULT_PAGE_SIZE = 100
PAGE_PAYLOAD_BUDGET = 8 * 1024 * 1024
"""A history page stops early (after at least one event) once its inline payloads pass this many bytes."""


def inlines_payload(event: RecordedEvent) -> bool:
    """Whether a listing carries the payload itself (JSON kept in the row) or a link to it."""
    return event.payload is not None and is_json_content_type(event.content_type)


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}", field="limit")
    return limit


@dataclass(frozen=True, slots=True)
class HistoryPage:
    events: list[RecordedEvent]
    next_sequence: int | None
    """Where the next page starts, or None when this page reached the end of the stream."""


def read_history(
    tenant: TenantEvents, workflow_instance_id: str, from_sequence: int = 1, limit: int = DEFAULT_PAGE_SIZE
) -> HistoryPage:
    """The instance's events in sequence order from `from_sequence`. A stream is gapless and only grows at
    its end, so "continue at sequence n" is stable under concurrent appends."""
    stream_id = instance_stream_id(workflow_instance_id, "instanceId")
    check_limit(limit)
    if from_sequence < 1:
        raise InvalidInput("fromSequence must be at least 1", field="fromSequence")
    read = tenant.read_stream(stream_id, from_sequence, limit=limit + 1)
    if not read and tenant.stream_version(stream_id) == 0:
        raise UnknownInstance(workflow_instance_id)
    events: list[RecordedEvent] = []
    budget = PAGE_PAYLOAD_BUDGET
    for event in read[:limit]:
        if events and inlines_payload(event) and event.payload_size > budget:
            break
        events.append(event)
        if inlines_payload(event):
            budget -= event.payload_size
    more = len(events) < len(read)
    return HistoryPage(events, events[-1].sequence_number + 1 if more else None)


def get_event(tenant: TenantEvents, event_id: UUID) -> tuple[RecordedEvent, bytes, ErasureMark | None]:
    """One event and its exact payload (from the row or Blob storage), its SHA-256 verified, with the mark of
    the erasure that redacted it (None: as received)."""
    event = tenant.get_event(event_id)
    if event is None:
        raise UnknownEvent(event_id)
    payload, mark = tenant.payload_and_mark_of(event)
    return event, payload, mark


def search_audit(
    tenant: TenantEvents,
    after: Checkpoint,
    limit: int = DEFAULT_PAGE_SIZE,
    *,
    recorded_from: datetime | None = None,
    recorded_to: datetime | None = None,
    event_types: Sequence[str] = (),
    workflow_id: str | None = None,
    workflow_instance_id: str | None = None,
) -> AllStreamPage:
    """Every stream's events (audit and instances) matching the filters, in commit-safe order after `after`."""
    check_limit(limit)
    stream_id = instance_stream_id(workflow_instance_id, "instanceId") if workflow_instance_id is not None else None
    return tenant.search(
        after,
        limit,
        recorded_from=recorded_from,
        recorded_to=recorded_to,
        event_types=event_types,
        workflow_id=workflow_id,
        stream_id=stream_id,
    )
