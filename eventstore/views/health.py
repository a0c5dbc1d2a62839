"""A tenant's view health: per view, its checkpoint, how far behind the all-stream it is, and the event
it stopped at (and why), if it did."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from eventstore.models import START
from eventstore.store import EventStore
from eventstore.views.traces import unplaced_count
from eventstore.views.view import View


# The answer of GET /api/tenants/{t}/views (its wire names are the aliases).
class _Report(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ViewStop(_Report):
    """The event a view could not apply: it stays before it, and every run tries it again."""

    event_id: str = Field(alias="eventId")
    reason: str
    at: datetime


class ViewHealth(_Report):
    name: str
    description: str
    checkpoint: str = Field(description="The last event applied, as `<transaction id>:<global position>`.")
    events_applied: int = Field(alias="eventsApplied")
    lag_events: int = Field(alias="lagEvents", description="Committed events the view has not applied yet.")
    lag_seconds: float | None = Field(
        alias="lagSeconds", description="How long the oldest of those has waited; null when none."
    )
    updated_at: datetime | None = Field(alias="updatedAt")
    stopped: ViewStop | None = Field(description="Set while the view is stopped at an event it cannot apply.")


class ViewsHealth(_Report):
    tenant_id: str = Field(alias="tenantId")
    views: list[ViewHealth]
    unplaced_trace_events: int = Field(
        alias="unplacedTraceEvents",
        description="Trace events the trace views could not place (kept in the log as ever; listed by "
        "GET /tenants/{t}/traces/unplaced).",
    )


def views_health(store: EventStore, tenant_id: str, views: Sequence[View], now: datetime | None = None) -> ViewsHealth:
    tenant_views = store.views(tenant_id)
    states = tenant_views.states()
    moment = now or datetime.now(UTC)
    report = []
    for view in views:
        state = states.get(view.name)
        checkpoint = state.checkpoint if state else START
        lag, oldest = tenant_views.lag(checkpoint)
        stopped = None
        if state and state.stopped_event_id is not None and state.stopped_at is not None:
            stopped = ViewStop(
                event_id=str(state.stopped_event_id), reason=state.stopped_reason or "", at=state.stopped_at
            )
        report.append(
            ViewHealth(
                name=view.name,
                description=view.description,
                checkpoint=str(checkpoint),
                events_applied=state.events_applied if state else 0,
                lag_events=lag,
                lag_seconds=max(0.0, (moment - oldest).total_seconds()) if oldest else None,
                updated_at=state.updated_at if state else None,
                stopped=stopped,
            )
        )
    return ViewsHealth(
        tenant_id=tenant_views.tenant_id, views=report, unplaced_trace_events=unplaced_count(tenant_views)
    )
