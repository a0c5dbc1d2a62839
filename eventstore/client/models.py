"""The client's wire shapes: the trace events it sends (docs/traces.md) and the answers it reads.

Names are camelCase on the wire (the aliases) and snake_case in Python. Answers ignore members they do not
know, so that the store can add members without breaking engines already deployed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue


class TraceEventType(StrEnum):
    """The event types a trace is made of (members of `eventstore.event_types.EventType` too)."""

    EXECUTION_STARTED = "ExecutionStarted"
    EXECUTION_COMPLETED = "ExecutionCompleted"
    EXECUTION_FAILED = "ExecutionFailed"
    STEP_STARTED = "StepStarted"
    STEP_COMPLETED = "StepCompleted"
    STEP_FAILED = "StepFailed"
    STEP_SKIPPED = "StepSkipped"


class _Sent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class _Read(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


# ---------------------------------------------------------------------------------------------------
# Sent: the payloads of the trace events


class TraceError(_Sent):
    """Why an execution or step failed: a message, and the destination's answer when there was one."""

    message: str
    status_code: int | None = Field(default=None, alias="statusCode")
    body: str | None = None


class ExecutionStarted(_Sent):
    execution_id: str = Field(alias="executionId")
    message_event_id: UUID | None = Field(default=None, alias="messageEventId")
    operation_id: str | None = Field(default=None, alias="operationId")
    replay_of: str | None = Field(default=None, alias="replayOf")
    replay_id: UUID | None = Field(default=None, alias="replayId", description="The replay that produced it.")


class ExecutionCompleted(_Sent):
    execution_id: str = Field(alias="executionId")


class ExecutionFailed(_Sent):
    execution_id: str = Field(alias="executionId")
    error: TraceError
    dead_lettered: bool = Field(
        default=False, alias="deadLettered", description="True when the engine gives up on the message for good."
    )


class _StepEvent(_Sent):
    execution_id: str = Field(alias="executionId")
    step_id: str = Field(alias="stepId")
    name: str
    attempt: int = Field(ge=1)
    idempotency_key: str | None = Field(alias="idempotencyKey")


class StepStarted(_StepEvent):
    input: JsonValue


class StepCompleted(_StepEvent):
    output: JsonValue


class StepFailed(_StepEvent):
    error: TraceError


class SkippedFor(_Sent):
    """The step that succeeded (in an earlier execution), whose output a skipped step reused."""

    execution_id: str = Field(alias="executionId")
    step_id: str = Field(alias="stepId")


class StepSkipped(_StepEvent):
    """A step not run again: a step with its idempotency key had succeeded (`skipped_for`)."""

    idempotency_key: str = Field(alias="idempotencyKey")
    skipped_for: SkippedFor = Field(alias="skippedFor")


TracePayload = (
    ExecutionStarted | ExecutionCompleted | ExecutionFailed | StepStarted | StepCompleted | StepFailed | StepSkipped
)

EVENT_TYPE_OF: dict[type[TracePayload], TraceEventType] = {
    ExecutionStarted: TraceEventType.EXECUTION_STARTED,
    ExecutionCompleted: TraceEventType.EXECUTION_COMPLETED,
    ExecutionFailed: TraceEventType.EXECUTION_FAILED,
    StepStarted: TraceEventType.STEP_STARTED,
    StepCompleted: TraceEventType.STEP_COMPLETED,
    StepFailed: TraceEventType.STEP_FAILED,
    StepSkipped: TraceEventType.STEP_SKIPPED,
}


# ---------------------------------------------------------------------------------------------------
# Read: what the store answers


class MessageAccepted(_Read):
    """The answer to POST /messages."""

    event_id: UUID = Field(alias="eventId")
    sequence_number: int = Field(alias="sequenceNumber")
    global_position: int = Field(alias="globalPosition")
    repeated: bool


class OutcomesAppended(_Read):
    """The answer to POST /instances/{id}/events."""

    event_ids: list[UUID] = Field(alias="eventIds")
    sequence_numbers: list[int] = Field(alias="sequenceNumbers")
    global_positions: list[int] = Field(alias="globalPositions")
    version: int
    repeated: bool


class ErrorRecord(_Read):
    message: str | None = None
    status_code: int | None = Field(default=None, alias="statusCode")
    body: str | None = None


RunStatus = Literal["started", "succeeded", "failed"]
StepStatus = Literal["started", "succeeded", "failed", "skipped"]
"""A step may also be `skipped`: a replay did not run it again, and reused the output of the step it names."""


class StepAttempt(_Read):
    """One attempt of a step."""

    attempt: int
    status: StepStatus
    started_at: datetime | None = Field(default=None, alias="startedAt")
    completed_at: datetime | None = Field(default=None, alias="completedAt")
    error: ErrorRecord | None = None


class StepReference(_Read):
    """A step named by another: the execution and the step id."""

    execution_id: str = Field(alias="executionId")
    step_id: str = Field(alias="stepId")


class StepRecord(_Read):
    """One step of an execution, as the executions view holds it."""

    execution_id: str = Field(alias="executionId")
    step_id: str = Field(alias="stepId")
    name: str | None = None
    status: StepStatus
    attempts: int = 0
    idempotency_key: str | None = Field(default=None, alias="idempotencyKey")
    input: JsonValue = None
    output: JsonValue = None
    error: ErrorRecord | None = None
    started_at: datetime | None = Field(default=None, alias="startedAt")
    completed_at: datetime | None = Field(default=None, alias="completedAt")
    attempt_history: list[StepAttempt] = Field(default_factory=list, alias="attemptHistory")
    skipped_for: StepReference | None = Field(
        default=None, alias="skippedFor", description="For a skipped step: the step whose output it reused."
    )


class ExecutionRecord(_Read):
    """One attempt by an engine to process one message."""

    execution_id: str = Field(alias="executionId")
    message_event_id: str | None = Field(default=None, alias="messageEventId")
    operation_id: str | None = Field(default=None, alias="operationId")
    workflow_id: str | None = Field(default=None, alias="workflowId")
    workflow_instance_id: str | None = Field(default=None, alias="workflowInstanceId")
    started_at: datetime | None = Field(default=None, alias="startedAt")
    completed_at: datetime | None = Field(default=None, alias="completedAt")
    status: RunStatus
    replay_of: str | None = Field(default=None, alias="replayOf")
    replay_id: str | None = Field(default=None, alias="replayId")
    error: ErrorRecord | None = None
    dead_lettered: bool = Field(default=False, alias="deadLettered")

    @property
    def finished(self) -> bool:
        return self.status != "started"


class Trace(ExecutionRecord):
    """An execution with its steps: the answer to GET /executions/{id}."""

    steps: list[StepRecord] = Field(default_factory=list)

    def failed_step(self) -> StepRecord | None:
        """The (last) step that failed, if any."""
        return next((s for s in reversed(self.steps) if s.status == "failed"), None)

    def skipped_steps(self) -> list[StepRecord]:
        """The steps a replay did not run again (their output is that of the step they name)."""
        return [s for s in self.steps if s.status == "skipped"]


class MessageRecord(_Read):
    """One received message and how far its processing got."""

    event_id: str = Field(alias="eventId")
    event_type: str | None = Field(default=None, alias="eventType")
    message_type: str | None = Field(default=None, alias="messageType")
    source_system: str | None = Field(default=None, alias="sourceSystem")
    workflow_id: str | None = Field(default=None, alias="workflowId")
    workflow_instance_id: str | None = Field(default=None, alias="workflowInstanceId")
    operation_id: str | None = Field(default=None, alias="operationId")
    payload_sha256: str | None = Field(default=None, alias="payloadSha256")
    received_at: datetime | None = Field(default=None, alias="receivedAt")
    status: str
    latest_execution_id: str | None = Field(default=None, alias="latestExecutionId")
    attempts: int = 0
    updated_at: datetime | None = Field(default=None, alias="updatedAt")
    replay_count: int = Field(default=0, alias="replayCount")
    last_replay_id: str | None = Field(default=None, alias="lastReplayId")
    last_replay_at: datetime | None = Field(default=None, alias="lastReplayAt")


class ComparedExecutionRecord(ExecutionRecord):
    """One side of a comparison: the execution, how long it took, and which rule chose it."""

    duration_ms: int | None = Field(default=None, alias="durationMs")
    chosen: str


class ComparedStepRecord(_Read):
    step_id: str = Field(alias="stepId")
    status: StepStatus
    attempts: int = 0
    idempotency_key: str | None = Field(default=None, alias="idempotencyKey")
    duration_ms: int | None = Field(default=None, alias="durationMs")
    input: JsonValue = None
    output: JsonValue = None
    error: ErrorRecord | None = None
    skipped_for: StepReference | None = Field(default=None, alias="skippedFor")


class StepPair(_Read):
    """The n-th step of a name on each side, and what differs between them."""

    name: str | None = None
    occurrence: int
    differences: list[str]
    left: ComparedStepRecord | None = None
    right: ComparedStepRecord | None = None


class RunComparison(_Read):
    """GET /messages/{eventId}/compare: two executions side by side, step by step (docs/traces.md)."""

    message_event_id: str = Field(alias="messageEventId")
    left: ComparedExecutionRecord
    right: ComparedExecutionRecord
    steps: list[StepPair]
