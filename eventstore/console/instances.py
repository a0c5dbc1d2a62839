"""An instance's timeline: its events in order, the state and the context as each left them (a diff), faults
highlighted, and the state rebuilt at any point picked (`?at=`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from eventstore.console.pages import TENANT, Answer, Asked, ConsoleRoute
from eventstore.errors import EventStoreError, InvalidInput, UnknownInstance
from eventstore.event_types import EventType
from eventstore.models import InstanceState, RecordedEvent
from eventstore.store import instance_stream_id
from eventstore.workflow_state import apply

SHOWN_EVENTS = 500
VALUE_SHOWN = 200
_FAULTS = {
    EventType.INSTANCE_CREATION_FAILED, EventType.TRANSITION_FAILED, EventType.STEP_FAILED, EventType.ERROR,
    EventType.EXECUTION_FAILED,
}  # fmt: skip


@dataclass(frozen=True)
class Change:
    key: str
    kind: str
    """added, removed or changed"""
    before: str | None
    after: str | None


@dataclass(frozen=True)
class Moment:
    event: RecordedEvent
    before: InstanceState
    after: InstanceState
    changes: list[Change]
    fault: bool
    problem: str | None
    """Why the event's payload could not be read (it is then left out of the state)."""


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= VALUE_SHOWN else text[:VALUE_SHOWN] + "…"


def context_diff(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    changes = []
    for key in sorted(set(before) | set(after)):
        if key not in before:
            changes.append(Change(key, "added", None, _shown(after[key])))
        elif key not in after:
            changes.append(Change(key, "removed", _shown(before[key]), None))
        elif before[key] != after[key]:
            changes.append(Change(key, "changed", _shown(before[key]), _shown(after[key])))
    return changes


def timeline(asked: Asked) -> Answer:
    tenant_id = asked.tenant_id()
    instance_id = asked.route("instanceId")
    tenant = asked.store.tenant(tenant_id)
    stream_id = instance_stream_id(instance_id, "instanceId")
    events = tenant.read_stream(stream_id, 1, limit=SHOWN_EVENTS + 1)
    if not events:
        raise UnknownInstance(instance_id)
    at_text = asked.query("at")
    try:
        at = int(at_text) if at_text is not None else None
    except ValueError:
        raise InvalidInput(f"{at_text!r} is not a sequence number", field="at") from None
    more = len(events) > SHOWN_EVENTS
    state = InstanceState(workflow_instance_id=instance_id)
    moments: list[Moment] = []
    picked: InstanceState | None = None
    for event in events[:SHOWN_EVENTS]:
        problem = None
        read = event
        if event.payload is None:
            try:
                read = event._replace(payload=tenant.payload_of(event))
            except EventStoreError as exc:
                problem = str(exc)
        after = state if problem else apply(state, read)
        moments.append(
            Moment(event, state, after, context_diff(state.context, after.context),
                   event.event_type in _FAULTS or after.status == "faulted", problem)
        )  # fmt: skip
        state = after
        if at is not None and event.sequence_number == at:
            picked = state
    if at is not None and picked is None:
        raise InvalidInput(f"the instance has no event {at} among the {len(moments)} shown", field="at")
    shown = picked or state
    return asked.page(
        "instance.html", f"Instance {instance_id}", tenant_id=tenant_id, section="messages", instance_id=instance_id,
        moments=moments, more=more, at=at, state=shown,
        state_json=json.dumps(shown.context, indent=2, ensure_ascii=False, sort_keys=True),
    )  # fmt: skip


ROUTES = (ConsoleRoute("console_instance", f"{TENANT}/instances/{{instanceId}}", timeline),)
