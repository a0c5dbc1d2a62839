"""Replay: one message or a bulk filter back to the engine's router (admin level), the jobs' status,
pause, resume and cancel; the replays queue's forwarder and the timer that drives the jobs.
docs/replay.md has the whole story."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID

import azure.functions as func
from pydantic import ValidationError

from eventstore.errors import InvalidInput
from eventstore.http import continuation
from eventstore.http.exchange import asked_body, event_id_param, json_response, parse_query, route_param
from eventstore.http.replay_models import (
    BulkReplayRequest,
    DryRunAnswer,
    JobChangeRequest,
    JobCounts,
    MessagePlanItem,
    PlannedStepItem,
    ReplayAccepted,
    ReplayJob,
    ReplayJobsPage,
    ReplayJobsQuery,
    ReplayJobSummary,
    ReplayMessageRequest,
)
from eventstore.http.routes import Body, Operation, Reply, http_function
from eventstore.models import JSON_CONTENT_TYPE
from eventstore.replay import requests as replay
from eventstore.replay.driver import REPLAY_QUEUE
from eventstore.replay.forwarder import ForwardMessage
from eventstore.services import services
from eventstore.settings import ReplaySchedule
from eventstore.store import ReplayJobRow
from eventstore.views.messages import MessageFilter

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger(__name__)

QUEUE_CONNECTION = "AzureWebJobsStorage"


def _job_id(req: func.HttpRequest) -> UUID:
    text = route_param(req, "jobId")
    try:
        return UUID(text)
    except ValueError:
        raise InvalidInput(f"jobId must be a UUID (got {text!r})", field="jobId") from None


def _plan(plan: replay.MessagePlan) -> MessagePlanItem:
    m = plan.message
    return MessagePlanItem(
        event_id=str(m.event_id),
        message_type=m.message_type,
        status=m.status,
        received_at=m.received_at,
        steps=[
            PlannedStepItem(
                name=s.name,
                idempotency_key=s.idempotency_key,
                action=s.action,
                execution_id=s.execution_id,
                step_id=s.step_id,
            )
            for s in plan.steps
        ],
    )


def _dry_run(answer: replay.DryRun) -> func.HttpResponse:
    return json_response(
        DryRunAnswer(matched=answer.matched, target=answer.target, sample=[_plan(p) for p in answer.sample])
    )


def _accepted(tenant_id: str, started: replay.Started) -> func.HttpResponse:
    job = started.job
    # Queue the first items now: a single replay reaches the router within a second, not at the next tick.
    try:
        services().replay_driver.drive_tenant(tenant_id)
    except Exception:  # the job is recorded; the timer drives it
        log.exception("replay job %s: first drive failed; the timer will drive it", job.job_id)
    body = ReplayAccepted(
        job_id=str(job.job_id),
        replay_id=str(started.replay_ids[0]) if started.replay_ids else None,
        matched=job.matched,
        state=job.state,
        target=job.target,
    )
    return json_response(body, 202, headers={"Location": f"/api/tenants/{tenant_id}/replays/{job.job_id}"})


def _job(status: replay.JobStatus) -> ReplayJob:
    job, counts = status.job, status.counts
    return ReplayJob(
        job_id=str(job.job_id), kind=job.kind, filter=job.filter, reason=job.reason, requested_by=job.requested_by,
        target=job.target, state=job.state, paused_reason=job.paused_reason, matched=job.matched, sent=job.sent,
        counts=JobCounts(
            pending=counts.pending, queued=counts.queued, sending=counts.sending, sent=counts.sent,
            cancelled=counts.cancelled, failing=counts.failing,
        ),
        outcomes=status.outcomes, rate=job.rate, canary=job.canary, canary_checked=job.canary_checked,
        max_failure_rate=job.max_failure_rate, last_error=job.last_error, last_error_at=job.last_error_at,
        created_at=job.created_at, finished_at=job.finished_at,
    )  # fmt: skip


# --- one message -----------------------------------------------------------------------------------------

REPLAY_MESSAGE = Operation(
    name="replay_message",
    method="POST",
    route="tenants/{tenantId}/messages/{eventId}/replay",
    auth_level="ADMIN",
    tag="replay",
    summary="Send one received message to the engine's router again",
    description="The stored message's exact bytes (hash verified) go to the tenant's router, marked as a "
    "replay (replay id, original event id, idempotency key, completed steps), never to the source system. "
    "Recorded as ReplayRequested in the audit stream. dryRun answers which known steps would be skipped "
    "(already succeeded for their idempotency key) and which would run again.",
    body=Body(
        {JSON_CONTENT_TYPE: ReplayMessageRequest},
        "Why, and who asks.",
        example={"reason": "CRM outage fixed", "requestedBy": "ops@contoso.example"},
    ),
    replies=(
        Reply(202, "Accepted: the replay is queued.", ReplayAccepted),
        Reply(200, "The dry run's plan.", DryRunAnswer),
    ),
    errors=(400, 404, 409, 415, 503),
)


@http_function(blueprint, REPLAY_MESSAGE)
def replay_message(req: func.HttpRequest) -> func.HttpResponse:
    event_id = event_id_param(req)
    tenant_id = services().store.tenant(route_param(req, "tenantId")).tenant_id
    asked: ReplayMessageRequest = asked_body(req, services().settings, ReplayMessageRequest)
    who = asked.requested_by
    store, settings = services().store, services().settings
    answer = replay.replay_message(
        store, settings, tenant_id, event_id, reason=asked.reason, requested_by=who, dry_run=asked.dry_run
    )
    if isinstance(answer, replay.DryRun):
        return _dry_run(answer)
    return _accepted(tenant_id, answer)


# --- bulk ------------------------------------------------------------------------------------------------

START_REPLAY_JOB = Operation(
    name="start_replay_job",
    method="POST",
    route="tenants/{tenantId}/replays",
    auth_level="ADMIN",
    tag="replay",
    summary="Replay every received message a filter selects (a bulk replay job)",
    description="Selects messages from the messages view (status, kind, message type, workflow, time of "
    "receipt), fixes the list in the order they were received, and forwards each to the router at `rate` "
    "per second. dryRun answers the count and the first matches with their plans. More matches than "
    "EVENTSTORE_REPLAY_CONFIRM_OVER need confirm: true. A message already in an unfinished job is refused "
    "(409), not sent twice. `canary` sends the first N and pauses the job when their failure rate is over "
    "maxFailureRate.",
    body=Body(
        {JSON_CONTENT_TYPE: BulkReplayRequest},
        "The filter, why, and who asks.",
        example={
            "filter": {
                "status": "failed",
                "messageType": "deal.won",
                "from": "2026-01-10T00:00:00Z",
                "to": "2026-01-13T00:00:00Z",
            },
            "reason": "email template bug fixed",
            "requestedBy": "ops@contoso.example",
            "dryRun": True,
        },
    ),
    replies=(Reply(202, "Accepted: the job runs.", ReplayAccepted), Reply(200, "The dry run.", DryRunAnswer)),
    errors=(400, 404, 409, 415, 422, 503),
)


@http_function(blueprint, START_REPLAY_JOB)
def start_replay_job(req: func.HttpRequest) -> func.HttpResponse:
    tenant_id = services().store.tenant(route_param(req, "tenantId")).tenant_id
    asked: BulkReplayRequest = asked_body(req, services().settings, BulkReplayRequest)
    who = asked.requested_by
    f = asked.filter
    match = MessageFilter(
        status=f.status, event_type=f.event_type, message_type=f.message_type, workflow_id=f.workflow_id,
        received_from=f.received_from, received_to=f.received_to,
    )  # fmt: skip
    answer = replay.replay_bulk(
        services().store, services().settings, tenant_id, match,
        f.model_dump(mode="json", by_alias=True, exclude_none=True),
        reason=asked.reason, requested_by=who, dry_run=asked.dry_run, confirm=asked.confirm, rate=asked.rate,
        canary=asked.canary, max_failure_rate=asked.max_failure_rate,
    )  # fmt: skip
    if isinstance(answer, replay.DryRun):
        return _dry_run(answer)
    return _accepted(tenant_id, answer)


GET_REPLAY_JOB = Operation(
    name="get_replay_job",
    method="GET",
    route="tenants/{tenantId}/replays/{jobId}",
    auth_level="ADMIN",
    tag="replay",
    summary="A replay job's state: matched, sent, failing, the replays' outcomes",
    description="Counts of the job's messages by delivery state, the last error, and the executions its "
    "replays produced by status (from the executions view).",
    replies=(Reply(200, "The job.", ReplayJob),),
    errors=(400, 404, 503),
)


@http_function(blueprint, GET_REPLAY_JOB)
def get_replay_job(req: func.HttpRequest) -> func.HttpResponse:
    job_id = _job_id(req)
    tenant_id = services().store.tenant(route_param(req, "tenantId")).tenant_id
    return json_response(_job(replay.job_status(services().store, tenant_id, job_id)))


LIST_REPLAY_JOBS = Operation(
    name="list_replay_jobs",
    method="GET",
    route="tenants/{tenantId}/replays",
    auth_level="ADMIN",
    tag="replay",
    summary="The tenant's replay jobs, newest first",
    description="Single and bulk jobs, newest first. Pages continue with `continuation`.",
    query=ReplayJobsQuery,
    replies=(Reply(200, "One page of jobs.", ReplayJobsPage),),
    errors=(400, 404, 503),
)


def _summary(job: ReplayJobRow) -> ReplayJobSummary:
    return ReplayJobSummary(
        job_id=str(job.job_id), kind=job.kind, state=job.state, reason=job.reason, requested_by=job.requested_by,
        matched=job.matched, sent=job.sent, created_at=job.created_at, finished_at=job.finished_at,
    )  # fmt: skip


@http_function(blueprint, LIST_REPLAY_JOBS)
def list_replay_jobs(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, ReplayJobsQuery)
    tenant_id = services().store.tenant(route_param(req, "tenantId")).tenant_id
    key = continuation.key_of(services().settings)
    filters = {"tenant": tenant_id}
    before = None
    if params.continuation:
        position = continuation.decode(key, params.continuation, "replays", filters)
        try:
            assert isinstance(position, list)
            before = (datetime.fromisoformat(str(position[0])), UUID(str(position[1])))
        except (AssertionError, ValueError, IndexError):
            raise InvalidInput("continuation is not a token this API handed out", field="continuation") from None
    jobs = replay.list_jobs(services().store, tenant_id, before=before, limit=params.limit)
    token = None
    if len(jobs) == params.limit:
        token = continuation.encode(key, "replays", [jobs[-1].created_at.isoformat(), str(jobs[-1].job_id)], filters)
    return json_response(ReplayJobsPage(jobs=[_summary(j) for j in jobs], continuation=token))


def _change(req: func.HttpRequest, to: str) -> func.HttpResponse:
    job_id = _job_id(req)
    tenant_id = services().store.tenant(route_param(req, "tenantId")).tenant_id
    asked: JobChangeRequest = asked_body(req, services().settings, JobChangeRequest)
    who = asked.requested_by
    replay.change_job(services().store, tenant_id, job_id, to, by=who, reason=asked.reason)
    if to == "running":
        services().replay_driver.drive_tenant(tenant_id)
    return json_response(_job(replay.job_status(services().store, tenant_id, job_id)))


_CHANGE_BODY = Body({JSON_CONTENT_TYPE: JobChangeRequest}, "Why, and who asks.")

CANCEL_REPLAY_JOB = Operation(
    name="cancel_replay_job",
    method="DELETE",
    route="tenants/{tenantId}/replays/{jobId}",
    auth_level="ADMIN",
    tag="replay",
    summary="Cancel a replay job: its unsent messages are not sent",
    description="Messages already sent stay sent; a message being sent at that moment may still arrive.",
    body=_CHANGE_BODY,
    replies=(Reply(200, "The cancelled job.", ReplayJob),),
    errors=(400, 404, 503),
)


@http_function(blueprint, CANCEL_REPLAY_JOB)
def cancel_replay_job(req: func.HttpRequest) -> func.HttpResponse:
    return _change(req, "cancelled")


PAUSE_REPLAY_JOB = Operation(
    name="pause_replay_job",
    method="POST",
    route="tenants/{tenantId}/replays/{jobId}/pause",
    auth_level="ADMIN",
    tag="replay",
    summary="Pause a running replay job",
    description="Nothing more is sent until it is resumed.",
    body=_CHANGE_BODY,
    replies=(Reply(200, "The paused job.", ReplayJob),),
    errors=(400, 404, 503),
)


@http_function(blueprint, PAUSE_REPLAY_JOB)
def pause_replay_job(req: func.HttpRequest) -> func.HttpResponse:
    return _change(req, "paused")


RESUME_REPLAY_JOB = Operation(
    name="resume_replay_job",
    method="POST",
    route="tenants/{tenantId}/replays/{jobId}/resume",
    auth_level="ADMIN",
    tag="replay",
    summary="Resume a paused replay job (also after its canary paused it)",
    description="It goes on from where it stopped; a canary that paused it is not checked again.",
    body=_CHANGE_BODY,
    replies=(Reply(200, "The running job.", ReplayJob),),
    errors=(400, 404, 503),
)


@http_function(blueprint, RESUME_REPLAY_JOB)
def resume_replay_job(req: func.HttpRequest) -> func.HttpResponse:
    return _change(req, "running")


# --- the queue and the timer -------------------------------------------------------------------------------


@blueprint.function_name("forward_replay")
@blueprint.queue_trigger(arg_name="msg", queue_name=REPLAY_QUEUE, connection=QUEUE_CONNECTION)
def forward_replay(msg: func.QueueMessage) -> None:
    try:
        message = ForwardMessage.model_validate_json(msg.get_body())
    except ValidationError as exc:
        # Only the driver writes this queue: a message it cannot have written is logged and dropped (the
        # job's items live in the database, and the driver queues any it finds unsent again).
        log.error("queue %s: message %s is not a replay item, dropped: %s", REPLAY_QUEUE, msg.id, exc)
        return
    outcome = services().forwarder.forward(message)
    log.info("queue %s: job %s items %s %s", REPLAY_QUEUE, message.job_id, list(message.positions), outcome)


SCHEDULE = ReplaySchedule().replay_schedule
_last_full_pass = [0.0]


@blueprint.function_name("drive_replays")
@blueprint.timer_trigger(arg_name="timer", schedule=SCHEDULE, run_on_startup=False)
def drive_replays(timer: func.TimerRequest) -> None:
    now = datetime.now(UTC).timestamp()
    full = now - _last_full_pass[0] >= services().settings.full_pass_seconds
    if full:
        _last_full_pass[0] = now
    result = services().replay_driver.run_all(full_pass=full)
    if result.queued or result.finished or result.paused or result.errors:
        log.info(
            "replays: %d item(s) queued; finished %s; paused %s; errors %s",
            result.queued, result.finished, result.paused, result.errors,
        )  # fmt: skip


OPERATIONS = (
    REPLAY_MESSAGE,
    START_REPLAY_JOB,
    LIST_REPLAY_JOBS,
    GET_REPLAY_JOB,
    CANCEL_REPLAY_JOB,
    PAUSE_REPLAY_JOB,
    RESUME_REPLAY_JOB,
)
