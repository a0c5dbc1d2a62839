"""A tenant's change-feed health: per sink, its checkpoint, what waits, what was refused, what fails."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from eventstore.feed.sinks import EVENT_GRID_SINK, WEBHOOK_SINK_PREFIX
from eventstore.models import START
from eventstore.settings import Settings
from eventstore.store import EventStore


# The answer of GET /api/tenants/{t}/feed (its wire names are the aliases).
class _Report(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class FeedSinkHealth(_Report):
    """One sink of a tenant's change feed: where it has got to and whether it is stuck."""

    name: str = Field(description="`eventgrid` or `webhook:<name>`; keys the sink's checkpoint.")
    kind: Literal["eventgrid", "webhook"]
    enabled: bool = Field(description="False: switched off, or no longer configured (its checkpoint is kept).")
    checkpoint: str = Field(description="The last event the sink took, as `<transaction id>:<global position>`.")
    pending_events: int = Field(alias="pendingEvents", description="Committed events the sink has not taken yet.")
    oldest_pending_age_seconds: float | None = Field(
        alias="oldestPendingAgeSeconds", description="How long the oldest of those has waited; null when none."
    )
    dead_letters: int = Field(
        alias="deadLetters", description="Events the sink refused (4xx), kept with status and reason."
    )
    last_success_at: datetime | None = Field(alias="lastSuccessAt")
    failing_since: datetime | None = Field(alias="failingSince", description="Set while deliveries keep failing.")
    last_error: str | None = Field(alias="lastError")


class WritingTransactionInfo(_Report):
    """The oldest open transaction with a transaction id on the server: no feed passes it until it ends."""

    age_seconds: float = Field(alias="ageSeconds")
    started_at: datetime = Field(alias="startedAt")
    pid: int
    database: str | None
    state: str | None


class FeedHealth(_Report):
    tenant_id: str = Field(alias="tenantId")
    enabled: bool = Field(description="Whether this deployment publishes a change feed at all.")
    sinks: list[FeedSinkHealth]
    oldest_writing_transaction: WritingTransactionInfo | None = Field(
        alias="oldestWritingTransaction",
        description="Null when none is open (or the database role cannot see other sessions).",
    )


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
