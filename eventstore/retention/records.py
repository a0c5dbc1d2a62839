"""The maintenance path's records: one event of the tenant's maintenance stream per action, its body a compact
JSON manifest (never the data the action moved or removed), who asked as its user id."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

from eventstore.event_types import EventType
from eventstore.models import NewEvent


def maintenance_record(
    event_type: EventType, body: dict[str, Any], *, by: str, source: str, event_id: UUID | None = None
) -> NewEvent:
    return NewEvent(
        event_id=event_id or uuid4(),
        event_type=event_type,
        payload=json.dumps(body, separators=(",", ":")).encode(),
        user_id=by,
        source_system=source,
    )
