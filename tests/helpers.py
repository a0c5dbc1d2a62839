"""Small builders shared by the tests."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

from eventstore import EventType, NewEvent


def event(
    payload: Any = None,
    event_type: EventType | str = EventType.STEP_COMPLETED,
    **fields: Any,
) -> NewEvent:
    """A NewEvent with a fresh id; `payload` may be bytes or anything JSON-serialisable."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload if payload is not None else {"n": 1}).encode()
    return NewEvent(event_id=fields.pop("event_id", uuid4()), event_type=event_type, payload=body, **fields)
