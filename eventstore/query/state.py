"""A workflow instance's state, rebuilt by folding its events (a projection; the log stays the truth),
at its latest event or at any sequence number.

Payloads are Marain engine CloudEvents (the `data` member is used) or their bare `data`: instance
created, transition completed, faulted; plus the finer events of `EventType`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from eventstore.errors import InvalidInput, UnknownInstance, UnknownSequence
from eventstore.event_types import EventType
from eventstore.models import InstanceState, RecordedEvent, is_json_content_type
from eventstore.store import TenantEvents, instance_stream_id

_REPLAY_PAGE = 1000

FAULTED = "faulted"
COMPLETE = "complete"
WAITING = "waiting"
CANCELLED = "cancelled"


def _data(event: RecordedEvent) -> dict[str, Any]:
    if event.payload is None or not is_json_content_type(event.content_type):
        return {}
    try:
        body = event.json()
    except ValueError:
        return {}
    if isinstance(body, dict) and "specversion" in body and isinstance(body.get("data"), dict):
        return dict(body["data"])
    return body if isinstance(body, dict) else {}


def _error_text(data: dict[str, Any], fallback: str) -> str:
    for key in ("error", "errorMessage", "message", "reason", "exception"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict) and isinstance(value.get("message"), str):
            return str(value["message"])
    return fallback


def apply(state: InstanceState, event: RecordedEvent) -> InstanceState:
    """The state after `event`. Unknown or irrelevant members of a payload are ignored."""
    data = _data(event)
    kind = event.event_type
    changes: dict[str, Any] = {"last_sequence": event.sequence_number, "last_event_type": kind}
    workflow_id = data.get("workflowId") or event.workflow_id
    if workflow_id and state.workflow_id is None:
        changes["workflow_id"] = workflow_id
    if kind in (
        EventType.INSTANCE_CREATED,
        EventType.TRANSITION_COMPLETED,
        EventType.STATE_CHANGED,
        EventType.WORKFLOW_STARTED,
    ):
        if "newState" in data:
            changes["state_id"] = data["newState"]
        if "newStatus" in data:
            changes["status"] = data["newStatus"]
        elif kind in (EventType.INSTANCE_CREATED, EventType.WORKFLOW_STARTED) and state.status is None:
            changes["status"] = WAITING
        context = data.get("newContext", data.get("suppliedContext") if kind == EventType.INSTANCE_CREATED else None)
        if isinstance(context, dict):
            changes["context"] = context
    elif kind in (EventType.TRANSITION_FAILED, EventType.INSTANCE_CREATION_FAILED):
        changes["status"] = data.get("newStatus") or FAULTED
        changes["last_error"] = _error_text(data, f"{kind} at sequence {event.sequence_number}")
        if kind == EventType.INSTANCE_CREATION_FAILED and isinstance(data.get("context"), dict):
            changes["context"] = data["context"]
    elif kind in (EventType.STEP_FAILED, EventType.ERROR):
        changes["last_error"] = _error_text(data, f"{kind} at sequence {event.sequence_number}")
    elif kind == EventType.WORKFLOW_PAUSED:
        changes["paused"] = True
    elif kind == EventType.WORKFLOW_RESUMED:
        changes["paused"] = False
    elif kind == EventType.WORKFLOW_CANCELLED:
        changes.update(status=CANCELLED, paused=False)
    elif kind == EventType.WORKFLOW_COMPLETED:
        changes.update(status=COMPLETE, paused=False)
        if "newState" in data:
            changes["state_id"] = data["newState"]
    return state.model_copy(update=changes)


def fold(workflow_instance_id: str, events: Iterable[RecordedEvent], at_sequence: int | None = None) -> InstanceState:
    """The instance's state after its events up to `at_sequence` (all of them when None)."""
    state = InstanceState(workflow_instance_id=workflow_instance_id)
    for event in events:
        if at_sequence is not None and event.sequence_number > at_sequence:
            break
        state = apply(state, event)
    return state


def replay(tenant: TenantEvents, workflow_instance_id: str, from_sequence: int = 1) -> Iterator[RecordedEvent]:
    """The instance's events in sequence order from `from_sequence`, read page by page."""
    stream_id = instance_stream_id(workflow_instance_id)
    if from_sequence < 1:
        raise InvalidInput("from_sequence must be at least 1", field="from_sequence")
    while True:
        page = tenant.read_stream(stream_id, from_sequence, limit=_REPLAY_PAGE)
        yield from page
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
