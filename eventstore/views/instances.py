"""The instances view: one row per workflow instance, its state as `workflow_state.apply` makes it, kept
current from the all-stream; and the reads the API serves from it.

Events of one instance reach the all-stream in sequence order (appends to a stream are serialised), so
applying them in all-stream order is the fold `query.rebuild_state` does. An event at or below the
row's `last_sequence` was applied already and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from eventstore.models import InstanceState, RecordedEvent
from eventstore.store import INSTANCE_PREFIX, TenantViews, ViewWriter
from eventstore.views.view import View
from eventstore.workflow_state import FAULTED, apply

TABLES = {"instances": "view_instances"}

_COLUMNS = (
    "workflow_instance_id, workflow_id, state_id, status, context, last_sequence, last_event_type, last_error,"
    " paused, created_at, updated_at, faulted_at"
)
_LOAD = "SELECT " + _COLUMNS + " FROM {instances} WHERE workflow_instance_id = ANY(%s)"
_UPSERT = (
    "INSERT INTO {instances} (" + _COLUMNS + ") VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (workflow_instance_id) DO UPDATE SET workflow_id = EXCLUDED.workflow_id,"
    " state_id = EXCLUDED.state_id, status = EXCLUDED.status, context = EXCLUDED.context,"
    " last_sequence = EXCLUDED.last_sequence, last_event_type = EXCLUDED.last_event_type,"
    " last_error = EXCLUDED.last_error, paused = EXCLUDED.paused, updated_at = EXCLUDED.updated_at,"
    " faulted_at = EXCLUDED.faulted_at"
)


class _Row:
    __slots__ = ("created_at", "faulted_at", "state", "updated_at")

    def __init__(self, state: InstanceState, created_at: datetime, updated_at: datetime, faulted_at: datetime | None):
        self.state, self.created_at, self.updated_at, self.faulted_at = state, created_at, updated_at, faulted_at


def _state_of(row: Sequence[Any]) -> InstanceState:
    return InstanceState(
        workflow_instance_id=row[0],
        workflow_id=row[1],
        state_id=row[2],
        status=row[3],
        context=json.loads(row[4]),
        last_sequence=row[5],
        last_event_type=row[6],
        last_error=row[7],
        paused=row[8],
    )


def _apply(writer: ViewWriter, events: Sequence[RecordedEvent]) -> None:
    mine = [e for e in events if e.stream_id.startswith(INSTANCE_PREFIX)]
    if not mine:
        return
    ids = sorted({e.stream_id.removeprefix(INSTANCE_PREFIX) for e in mine})
    rows = {r[0]: _Row(_state_of(r), r[9], r[10], r[11]) for r in writer.execute(_LOAD, [ids])}
    changed: set[str] = set()
    for event in mine:
        instance_id = event.stream_id.removeprefix(INSTANCE_PREFIX)
        row = rows.get(instance_id)
        if row is None:
            row = rows[instance_id] = _Row(
                InstanceState(workflow_instance_id=instance_id), event.recorded_at, event.recorded_at, None
            )
        elif event.sequence_number <= row.state.last_sequence:
            continue
        before = row.state.status
        row.state = apply(row.state, event)
        row.updated_at = event.recorded_at
        if row.state.status == FAULTED and before != FAULTED:
            row.faulted_at = event.recorded_at
        changed.add(instance_id)
    writer.executemany(
        _UPSERT,
        [
            (
                s.workflow_instance_id,
                s.workflow_id,
                s.state_id,
                s.status,
                json.dumps(s.context),
                s.last_sequence,
                s.last_event_type,
                s.last_error,
                s.paused,
                row.created_at,
                row.updated_at,
                row.faulted_at,
            )
            for instance_id in sorted(changed)
            for row in (rows[instance_id],)
            for s in (row.state,)
        ],
    )


INSTANCES = View(
    name="instances",
    tables=TABLES,
    apply=_apply,
    description="One row per workflow instance: workflow, state, status, last error, event count, times.",
)


def list_instances(
    views: TenantViews,
    *,
    status: str | None = None,
    workflow_id: str | None = None,
    updated_from: datetime | None = None,
    updated_to: datetime | None = None,
    after: str = "",
    limit: int = 100,
) -> list[InstanceState]:
    """Instances in id order after `after` matching every filter given, at most `limit` (keyset pages)."""
    filters = ["workflow_instance_id > %s"]
    params: list[Any] = [after]
    # Each filter is a fixed fragment; only values travel as parameters.
    if status is not None:
        filters.append("status = %s")
        params.append(status)
    if workflow_id is not None:
        filters.append("workflow_id = %s")
        params.append(workflow_id)
    if updated_from is not None:
        filters.append("updated_at >= %s")
        params.append(updated_from)
    if updated_to is not None:
        filters.append("updated_at < %s")
        params.append(updated_to)
    statement = (
        "SELECT "
        + _COLUMNS
        + " FROM {instances} WHERE "
        + " AND ".join(filters)
        + " ORDER BY workflow_instance_id LIMIT %s"
    )
    return [_state_of(row) for row in views.fetch(TABLES, statement, [*params, limit])]
