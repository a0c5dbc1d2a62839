"""A tenant's change-feed health: per sink, its checkpoint, what waits, what was refused, what fails."""

from __future__ import annotations

from datetime import UTC, datetime

from eventstore.feed.sinks import EVENT_GRID_SINK, WEBHOOK_SINK_PREFIX
from eventstore.http.models import FeedHealth, FeedSinkHealth, WritingTransactionInfo
from eventstore.models import START
from eventstore.settings import Settings
from eventstore.store import EventStore


def configured_sinks(settings: Settings) -> dict[str, bool]:
    """Every sink the settings name, with whether it publishes."""
    sinks: dict[str, bool] = {}
    if settings.eventgrid_endpoint:
        sinks[EVENT_GRID_SINK] = settings.feed_enabled and settings.eventgrid_enabled
    for name, hook in sorted(settings.webhooks.items()):
        sinks[WEBHOOK_SINK_PREFIX + name] = settings.feed_enabled and hook.enabled
    return sinks


def feed_health(store: EventStore, tenant_id: str, now: datetime | None = None) -> FeedHealth:
    tenant = store.feed(tenant_id)
    settings = store.settings
    states = tenant.sink_states()
    sinks = configured_sinks(settings)
    for stored in states:
        sinks.setdefault(stored, False)
    moment = now or datetime.now(UTC)
    report = []
    for name, enabled in sinks.items():
        state = states.get(name)
        checkpoint = state.checkpoint if state else START
        pending = tenant.pending(checkpoint)
        oldest = pending.oldest_recorded_at
        report.append(
            FeedSinkHealth(
                name=name,
                kind="webhook" if name.startswith(WEBHOOK_SINK_PREFIX) else "eventgrid",
                enabled=enabled,
                checkpoint=str(checkpoint),
                pending_events=pending.events,
                oldest_pending_age_seconds=max(0.0, (moment - oldest).total_seconds()) if oldest else None,
                dead_letters=tenant.dead_letter_count(name),
                last_success_at=state.last_success_at if state else None,
                failing_since=state.failing_since if state else None,
                last_error=state.last_error if state else None,
            )
        )
    writer = store.oldest_writing_transaction(tenant.placement.dsn_name)
    return FeedHealth(
        tenant_id=tenant.tenant_id,
        enabled=settings.feed_enabled,
        sinks=report,
        oldest_writing_transaction=WritingTransactionInfo(
            age_seconds=writer.age_seconds,
            started_at=writer.started_at,
            pid=writer.pid,
            database=writer.database,
            state=writer.state,
        )
        if writer
        else None,
    )
