"""What an ingest call wrote: one shape for messages and outcomes, over HTTP or from a queue."""

from __future__ import annotations

from dataclasses import dataclass

from eventstore.models import AppendResult, NewEvent


@dataclass(frozen=True, slots=True)
class Recorded:
    """The events one call appended (or, on a repeat, the ones the first delivery appended)."""

    tenant_id: str
    """Canonical (a GUID lowered)."""
    stream_id: str
    """The audit stream for a message, the instance's stream for outcomes."""
    workflow_instance_id: str | None
    """The instance the events belong to: the outcomes' instance, or the one a message names (if any)."""
    events: list[NewEvent]
    result: AppendResult
