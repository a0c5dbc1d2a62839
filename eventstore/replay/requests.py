"""Asking for replays: one message, or a bulk filter over the messages view; the dry run's plan; a job's
status; pausing, resuming and cancelling. Each request is recorded in the tenant's audit stream in the same
transaction as the job it creates or changes (docs/replay.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from eventstore.errors import InvalidInput, UnknownEvent
from eventstore.event_types import EventType
from eventstore.models import NewEvent
from eventstore.query import catch_up, up_to_date
from eventstore.replay.router import router_settings
from eventstore.settings import Settings
from eventstore.store import (
    EventStore,
    ItemCounts,
    NewReplayJob,
    ReplayJobRow,
    TenantReplays,
    UnknownReplayJob,
)
from eventstore.views import EXECUTIONS, MESSAGES, messages, traces
from eventstore.views.messages import MessageFilter, MessageRow

SAMPLE_SIZE = 10
"""How many matching messages a bulk dry run shows, each with its plan."""

SINGLE, BULK = "single", "bulk"


class NotAMessage(InvalidInput):
    """The event exists but is not a received message (outcomes and trace events cannot be replayed)."""


@dataclass(frozen=True)
class PlannedStep:
    """What a replay of a message will do with one of its steps, as far as the store knows them: `skip`
    (it already succeeded: `execution_id`/`step_id` name where) or `run` (it never succeeded). Steps the
    engine never reached are not known here; they run."""

    name: str | None
    idempotency_key: str | None
    action: str
    execution_id: str | None = None
    step_id: str | None = None


@dataclass(frozen=True)
class MessagePlan:
    message: MessageRow
    steps: list[PlannedStep]


@dataclass(frozen=True)
class DryRun:
    matched: int
    sample: list[MessagePlan]
    target: str


@dataclass(frozen=True)
class Started:
    job: ReplayJobRow
    replay_ids: list[UUID] = field(default_factory=list)
    """The replay id of each message (single replays: the one)."""


@dataclass(frozen=True)
class JobStatus:
    job: ReplayJobRow
    counts: ItemCounts
    outcomes: dict[str, int]
    """The executions the job's replays produced so far, by status (started, succeeded, failed)."""


def _check_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise InvalidInput("reason must say why the replay is needed", field="reason")
    return reason


def plan_message(store: EventStore, tenant_id: str, message: MessageRow) -> MessagePlan:
    """Which of the message's known steps a replay would skip and which would run again."""
    views = store.views(tenant_id)
    found: dict[str, PlannedStep] = {}
    for execution in traces.executions_of_message(views, message.event_id):
        for step in traces.steps_of(views, execution.execution_id):
            key = step.idempotency_key or f"(no key) {step.name}"
            done = step.status == "succeeded" and step.idempotency_key is not None
            if done and (key not in found or found[key].action != "skip"):
                found[key] = PlannedStep(step.name, step.idempotency_key, "skip", step.execution_id, step.step_id)
            elif key not in found:
                found[key] = PlannedStep(step.name, step.idempotency_key, "run")
    return MessagePlan(message, list(found.values()))


def _message(store: EventStore, tenant_id: str, event_id: UUID) -> MessageRow:
    row = messages.get_message(store.views(tenant_id), event_id)
    if row is not None:
        return row
    if store.tenant(tenant_id).get_event(event_id) is not None:
        raise NotAMessage(
            f"event {event_id} is not a received message (TriggerReceived or InstanceCreationRequestReceived); "
            "only messages can be replayed",
            field="eventId",
        )
    raise UnknownEvent(event_id)


def _requested(job: NewReplayJob) -> NewEvent:
    payload = {
        "jobId": str(job.job_id),
        "kind": job.kind,
        "filter": job.filter,
        "reason": job.reason,
        "requestedBy": job.requested_by,
        "target": job.target,
        "rate": job.rate,
        "canary": job.canary,
        "maxFailureRate": job.max_failure_rate,
    }
    return NewEvent(
        event_id=uuid4(),
        event_type=EventType.REPLAY_REQUESTED,
        payload=json.dumps(payload, separators=(",", ":")).encode(),
        user_id=job.requested_by[:256],
    )


def replay_message(
    store: EventStore,
    settings: Settings,
    tenant_id: str,
    event_id: UUID,
    *,
    reason: str,
    requested_by: str,
    dry_run: bool = False,
) -> Started | DryRun:
    """Replay one received message: a job of one, recorded as ReplayRequested. Its dry run plans it."""
    reason = _check_reason(reason)
    tenant_id = up_to_date(store, tenant_id, MESSAGES, EXECUTIONS)
    message = _message(store, tenant_id, event_id)
    target = router_settings(settings, tenant_id).describe()
    if dry_run:
        return DryRun(1, [plan_message(store, tenant_id, message)], target)
    job = NewReplayJob(uuid4(), SINGLE, {"eventId": str(event_id)}, reason, requested_by, target, settings.replay_rate)
    return _create(store, tenant_id, job, MessageFilter(event_ids=(event_id,)), confirm_over=None)


def replay_bulk(
    store: EventStore,
    settings: Settings,
    tenant_id: str,
    match: MessageFilter,
    described: dict[str, Any],
    *,
    reason: str,
    requested_by: str,
    dry_run: bool = False,
    confirm: bool = False,
    rate: float | None = None,
    canary: int | None = None,
    max_failure_rate: float | None = None,
) -> Started | DryRun:
    """Replay every message `match` selects (`described`: the filter as the client gave it, recorded)."""
    reason = _check_reason(reason)
    tenant_id = up_to_date(store, tenant_id, MESSAGES, EXECUTIONS)
    target = router_settings(settings, tenant_id).describe()
    if dry_run:
        replays = store.replays(tenant_id)
        select, params = messages.matching(match)
        matched = replays.count(messages.TABLES, select, params)
        sample = messages.list_messages(
            store.views(tenant_id),
            status=match.status,
            event_type=match.event_type,
            message_type=match.message_type,
            workflow_id=match.workflow_id,
            received_from=match.received_from,
            received_to=match.received_to,
            limit=SAMPLE_SIZE,
        )
        return DryRun(matched, [plan_message(store, tenant_id, m) for m in sample], target)
    job = NewReplayJob(
        uuid4(),
        BULK,
        described,
        reason,
        requested_by,
        target,
        rate or settings.replay_rate,
        canary,
        max_failure_rate,
    )
    return _create(store, tenant_id, job, match, confirm_over=None if confirm else settings.replay_confirm_over)


def _create(
    store: EventStore, tenant_id: str, job: NewReplayJob, match: MessageFilter, *, confirm_over: int | None
) -> Started:
    replays = store.replays(tenant_id)
    select, params = messages.matching(match)
    row = replays.create_job(job, messages.TABLES, select, params, _requested(job), confirm_over=confirm_over)
    # The timer visits marked tenants; a mark lost here is found by its full pass.
    store.registry.mark_replaying(tenant_id)
    first = replays.items(row.job_id, limit=1) if row.kind == SINGLE else []
    return Started(row, [i.replay_id for i in first])


def changed_event(job_id: UUID, state: str, *, by: str, reason: str | None, counts: ItemCounts | None) -> NewEvent:
    """The ReplayJobChanged event of a job going to `state`."""
    payload: dict[str, Any] = {"jobId": str(job_id), "state": state, "by": by, "reason": reason}
    if counts is not None:
        payload["counts"] = {"sent": counts.sent, "cancelled": counts.cancelled, "failing": counts.failing}
    return NewEvent(
        event_id=uuid4(),
        event_type=EventType.REPLAY_JOB_CHANGED,
        payload=json.dumps(payload, separators=(",", ":")).encode(),
        user_id=by[:256],
    )


def job_status(store: EventStore, tenant_id: str, job_id: UUID) -> JobStatus:
    replays = store.replays(tenant_id)
    job = replays.job(job_id)
    if job is None:
        raise UnknownReplayJob(job_id)
    catch_up(store, replays.tenant_id, EXECUTIONS)
    return JobStatus(job, replays.counts(job_id), replay_outcomes(replays, job_id))


_OUTCOMES = (
    # Per item, the outcome of its replay: succeeded when any execution of it did (a replay delivered twice
    # runs twice), else its latest execution's status; items whose replay has not run yet are not counted.
    "SELECT status, count(*) FROM (SELECT DISTINCT ON (i.position) e.status"
    " FROM {items} AS i JOIN {executions} AS e ON e.replay_id = i.replay_id"
    " WHERE i.job_id = %s AND i.position <= %s"
    " ORDER BY i.position, (e.status = 'succeeded') DESC, e.started_at DESC) AS latest GROUP BY status"
)


def replay_outcomes(replays: TenantReplays, job_id: UUID, *, first: int | None = None) -> dict[str, int]:
    """A job's messages (its `first` items only, when given) by the outcome of their replay: succeeded when an
    execution of it succeeded, else the status of its latest execution; those not run yet are not counted."""
    rows = replays.outcomes(job_id, {"executions": traces.TABLES["executions"]}, _OUTCOMES, first=first)
    return {str(status): int(n) for status, n in rows}


def change_job(
    store: EventStore, tenant_id: str, job_id: UUID, to: str, *, by: str, reason: str | None = None
) -> ReplayJobRow:
    """Pause, resume or cancel a job (recorded as ReplayJobChanged)."""
    replays = store.replays(tenant_id)
    counts = replays.counts(job_id) if to == "cancelled" else None
    row = replays.change(job_id, to, changed_event(job_id, to, by=by, reason=reason, counts=counts), reason=reason)
    if to == "running":
        store.registry.mark_replaying(replays.tenant_id)
    return row


def list_jobs(
    store: EventStore, tenant_id: str, *, before: tuple[datetime, UUID] | None = None, limit: int = 50
) -> list[ReplayJobRow]:
    return store.replays(tenant_id).jobs(before=before, limit=limit)
