"""The replay API's request and response bodies (docs/replay.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from annotated_types import Interval
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    ValidationInfo,
    model_validator,
)

from eventstore.http.models import Rfc3339
from eventstore.store import NO_CONTROL_CHARACTERS

MessageStatus = Literal["received", "processing", "succeeded", "failed", "dead-lettered"]
MessageEventType = Literal["TriggerReceived", "InstanceCreationRequestReceived"]
JobState = Literal["running", "paused", "cancelled", "finished"]


def _a_json_integer(value: object) -> object:
    # JSON Schema's integer takes 1.0 (pydantic's strict int does not) but never "1" or true (its lax int does).
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON integer")
    return value


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _reason() -> Any:
    return Field(min_length=1, max_length=2000, description="Why: recorded in the audit stream with the replay.")


PRINCIPAL = "principal"
"""The validation context's key for the signed-in principal (App Service Authentication), when there is one."""


class _Asked(_Wire):
    """A request someone answers for: `requestedBy` is recorded with what it starts or changes."""

    requested_by: str = Field(
        alias="requestedBy",
        min_length=1,
        max_length=256,
        pattern=NO_CONTROL_CHARACTERS,
        description="Who asks (recorded). Behind App Service Authentication the signed-in principal is "
        "recorded instead, and this member may be left out.",
    )

    @model_validator(mode="before")
    @classmethod
    def _signed_in(cls, data: Any, info: ValidationInfo) -> Any:
        # The signed-in principal is who asks, whatever the body says: a body cannot name someone else.
        principal = (info.context or {}).get(PRINCIPAL)
        if principal and isinstance(data, dict):
            return {**data, "requestedBy": principal[:256]}
        return data


class ReplayMessageRequest(_Asked):
    reason: str = _reason()
    dry_run: StrictBool = Field(default=False, alias="dryRun", description="Only say what a replay would do.")


class ReplayFilter(_Wire):
    """Which received messages: every member given must hold."""

    status: MessageStatus | None = Field(default=None, description="Processing status, e.g. failed.")
    event_type: MessageEventType | None = Field(default=None, alias="eventType")
    message_type: str | None = Field(
        default=None,
        alias="messageType",
        min_length=1,
        max_length=512,
        pattern=NO_CONTROL_CHARACTERS,
        description="The trigger's name or the workflow started (e.g. deal.won).",
    )
    workflow_id: str | None = Field(
        default=None, alias="workflowId", min_length=1, max_length=512, pattern=NO_CONTROL_CHARACTERS
    )
    received_from: Rfc3339 | None = Field(default=None, alias="from", description="Received at or after.")
    received_to: Rfc3339 | None = Field(default=None, alias="to", description="Received before.")


class BulkReplayRequest(_Asked):
    filter: ReplayFilter
    reason: str = _reason()
    dry_run: StrictBool = Field(default=False, alias="dryRun", description="Count and plan the first matches only.")
    confirm: StrictBool = Field(
        default=False, description="Required when more messages match than EVENTSTORE_REPLAY_CONFIRM_OVER."
    )
    rate: StrictFloat | None = Field(default=None, gt=0, le=1000, description="Messages per second (default: setting).")
    canary: Annotated[int, Interval(ge=1, le=100_000), BeforeValidator(_a_json_integer)] | None = Field(
        default=None,
        description="Send the first N, wait for their executions to end, and go on only when their failure "
        "rate is at most maxFailureRate; otherwise the job pauses itself.",
    )
    max_failure_rate: StrictFloat | None = Field(default=None, alias="maxFailureRate", ge=0, le=1)


class JobChangeRequest(_Asked):
    reason: str | None = Field(default=None, min_length=1, max_length=2000)


class PlannedStepItem(_Wire):
    name: str | None
    idempotency_key: str | None = Field(alias="idempotencyKey")
    action: Literal["skip", "run"]
    execution_id: str | None = Field(default=None, alias="executionId", description="Where it succeeded (skip).")
    step_id: str | None = Field(default=None, alias="stepId")


class MessagePlanItem(_Wire):
    event_id: str = Field(alias="eventId")
    message_type: str = Field(alias="messageType")
    status: str
    received_at: AwareDatetime = Field(alias="receivedAt")
    steps: list[PlannedStepItem] = Field(
        description="The steps the store knows for this message: skipped (already succeeded for their "
        "idempotency key) or run again. Steps the engine never reached run too."
    )


class DryRunAnswer(_Wire):
    matched: int
    target: str = Field(description="Where the replays would go (the router, without secrets).")
    sample: list[MessagePlanItem]


class JobCounts(_Wire):
    pending: int
    queued: int
    sending: int
    sent: int
    cancelled: int
    failing: int = Field(description="Items whose last attempt failed, waiting for the next one.")


class ReplayJob(_Wire):
    job_id: str = Field(alias="jobId")
    kind: Literal["single", "bulk"]
    filter: dict[str, object]
    reason: str
    requested_by: str = Field(alias="requestedBy")
    target: str
    state: JobState
    paused_reason: str | None = Field(alias="pausedReason")
    matched: int
    sent: int
    counts: JobCounts
    outcomes: dict[str, int] = Field(
        description="The messages whose replay ran, by outcome: succeeded when an execution of the replay did, else "
        "the status of its latest execution (a replay delivered twice counts once)."
    )
    rate: float
    canary: int | None
    canary_checked: bool = Field(alias="canaryChecked")
    max_failure_rate: StrictFloat | None = Field(alias="maxFailureRate")
    last_error: str | None = Field(alias="lastError")
    last_error_at: datetime | None = Field(alias="lastErrorAt")
    created_at: datetime = Field(alias="createdAt")
    finished_at: datetime | None = Field(alias="finishedAt")


class ReplayAccepted(_Wire):
    job_id: str = Field(alias="jobId")
    replay_id: str | None = Field(default=None, alias="replayId", description="A single replay's id.")
    matched: int
    state: JobState
    target: str


class ReplayJobSummary(_Wire):
    job_id: str = Field(alias="jobId")
    kind: Literal["single", "bulk"]
    state: JobState
    reason: str
    requested_by: str = Field(alias="requestedBy")
    matched: int
    sent: int
    created_at: datetime = Field(alias="createdAt")
    finished_at: datetime | None = Field(alias="finishedAt")


class ReplayJobsPage(_Wire):
    jobs: list[ReplayJobSummary]
    continuation: str | None


class ReplayJobsQuery(_Wire):
    limit: int = Field(default=50, ge=1, le=500)
    continuation: str | None = Field(default=None, max_length=2048)
