"""A workflow instance's state, rebuilt by folding its events (a projection; the log stays the truth),
at its latest event or at any sequence number (`eventstore.workflow_state` holds the fold)."""

from __future__ import annotations

from collections.abc import Iterator

from eventstore.errors import InvalidInput, UnknownInstance, UnknownSequence
from eventstore.models import InstanceState, RecordedEvent
from eventstore.store import TenantEvents, instance_stream_id
from eventstore.workflow_state import fold

_REPLAY_PAGE = 1000


def replay(tenant: TenantEvents, workflow_instance_id: str, from_sequence: int = 1) -> Iterator[RecordedEvent]:
    """The instance's events in sequence order from `from_sequence`, read page by page, each with its payload:
    one kept in Blob storage (large, or archived by retention) is fetched and verified, so that the state
    folded from them is the state the events say (an archived one in the Archive tier: `PayloadArchived`)."""
    stream_id = instance_stream_id(workflow_instance_id)
    if from_sequence < 1:
        raise InvalidInput("from_sequence must be at least 1", field="from_sequence")
    while True:
        page = tenant.read_stream(stream_id, from_sequence, limit=_REPLAY_PAGE)
        for event in page:
            yield event if event.payload is not None else event._replace(payload=tenant.payload_of(event))
        if len(page) < _REPLAY_PAGE:
            return
        from_sequence = page[-1].sequence_number + 1


def rebuild_state(tenant: TenantEvents, workflow_instance_id: str, at_sequence: int | None = None) -> InstanceState:
    """The instance's state after its event `at_sequence` (default: the latest)."""
    if at_sequence is not None and at_sequence < 0:
        raise InvalidInput("at_sequence must be >= 0", field="at_sequence")
    return fold(workflow_instance_id, replay(tenant, workflow_instance_id), at_sequence)


def instance_state(tenant: TenantEvents, workflow_instance_id: str, at_sequence: int | None = None) -> InstanceState:
    """The read API's state: as `rebuild_state`, with an unknown instance or a sequence past its last
    event refused by name."""
    stream_id = instance_stream_id(workflow_instance_id, "instanceId")
    version = tenant.stream_version(stream_id)
    if version == 0:
        raise UnknownInstance(workflow_instance_id)
    if at_sequence is not None and at_sequence < 0:
        raise InvalidInput(f"atSequence must be at least 0 (got {at_sequence})", field="atSequence")
    if at_sequence is not None and at_sequence > version:
        raise UnknownSequence(workflow_instance_id, at_sequence, version, field="atSequence")
    return rebuild_state(tenant, workflow_instance_id, at_sequence)
