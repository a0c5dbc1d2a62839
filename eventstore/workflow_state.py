"""A workflow instance's state as its events make it: the fold every reader shares (the read API
rebuilding at any sequence number, the instances view keeping it current). Pure: no I/O.

Payloads are Marain engine CloudEvents (the `data` member is used) or their bare `data`: instance
created, transition completed, faulted; plus the finer events of `EventType`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eventstore.event_types import EventType
from eventstore.models import InstanceState, RecordedEvent, is_json_content_type

FAULTED = "faulted"
COMPLETE = "complete"
WAITING = "waiting"
CANCELLED = "cancelled"


def _data(event: RecordedEvent) -> dict[str, Any]:
    if event.payload is None or not is_json_content_type(event.content_type):
        return {}
    try:
        body = event.json()
    except (ValueError, RecursionError):
        # Nested deeper than the parser goes where it runs (a timer's thread has a stack already): the
        # members a state is made of are at the top of a payload, so such an event changes no state member,
        # and the instance still counts it. Stopping the view at it would stop every instance of the tenant.
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
