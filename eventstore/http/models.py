"""The HTTP API's wire models (camelCase, frozen): query strings, request and response bodies.

The OpenAPI document is generated from these, and the handlers parse with and answer in them, so the
two cannot drift.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, JsonValue

from eventstore.event_types import EventType
from eventstore.http.continuation import MAX_TOKEN_LENGTH, TOKEN_PATTERN
from eventstore.query import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_SEQUENCE
from eventstore.store import MAX_INSTANCE_ID_LENGTH, NO_CONTROL_CHARACTERS

_EVENT_TYPE_NAMES = "|".join(re.escape(t.value) for t in EventType)
EVENT_TYPE_LIST = rf"^ *(?:{_EVENT_TYPE_NAMES}) *(?:, *(?:{_EVENT_TYPE_NAMES}) *)*$"
"""One or more event type names, comma-separated (spaces around them allowed), nothing else."""

PATTERN_MEANINGS = {
    NO_CONTROL_CHARACTERS: "must not contain control characters (U+0000-U+001F, U+007F)",
    EVENT_TYPE_LIST: "must be one or more event types separated by commas, each one of: "
    + ", ".join(t.value for t in EventType),
    TOKEN_PATTERN: "is not a token this API handed out; start over without it",
}
"""What a query value that does not match a pattern is told, instead of the pattern itself."""

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII)


def _rfc3339(value: object) -> object:
    # pydantic's lax datetime also takes Unix timestamps ("0.5") and dates without a time or offset; the
    # API documents RFC 3339 date-times (OpenAPI format date-time), so that is all it takes.
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError(f"must be an RFC 3339 date-time with an offset, like 2024-01-10T00:00:00Z (got {value!r})")
    return value


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


# --- query strings (values arrive as text; pydantic converts) ---------------------------------------


def _limit() -> int:
    return Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Most items in one page.")


def _min_position() -> int | None:
    return Field(
        default=None,
        alias="minPosition",
        ge=0,
        le=2**63 - 1,
        description="Read-your-writes: a `globalPosition` an append answered. The view is first brought up "
        "to date (waiting up to 2 s); if it still has not applied the event at this position, the answer is "
        "503 `view-behind` with Retry-After instead of an answer without it.",
    )


def _continuation() -> str | None:
    return Field(
        default=None,
        max_length=MAX_TOKEN_LENGTH,
        pattern=TOKEN_PATTERN,
        description="The `continuation` of the previous page, as it was handed out (signed); only valid with "
        "the same filters.",
    )


class HistoryQuery(_Wire):
    from_sequence: int = Field(
        default=1, ge=1, le=MAX_SEQUENCE, alias="fromSequence", description="First sequence number to return."
    )
    limit: int = _limit()
    continuation: str | None = _continuation()


class StateQuery(_Wire):
    at_sequence: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SEQUENCE,
        alias="atSequence",
        description="Rebuild the state after this event (default: the last).",
    )


class EventQuery(_Wire):
    format: Literal["raw", "envelope"] = Field(
        default="raw",
        description="`raw`: the exact payload with its stored content type; `envelope`: metadata and payload as JSON.",
    )


class AuditQuery(_Wire):
    recorded_from: Rfc3339 | None = Field(
        default=None, alias="from", description="Recorded at or after (RFC 3339 date-time with an offset)."
    )
    recorded_to: Rfc3339 | None = Field(
        default=None,
        alias="to",
        description="Recorded before (RFC 3339 date-time with an offset); not after `from` matches nothing.",
    )
    event_type: str | None = Field(
        default=None,
        alias="eventType",
        max_length=2000,
        pattern=EVENT_TYPE_LIST,
        description="Event types, comma-separated.",
    )
    workflow_id: str | None = Field(
        default=None, alias="workflowId", min_length=1, max_length=512, pattern=NO_CONTROL_CHARACTERS
    )
    instance_id: str | None = Field(
        default=None,
        alias="instanceId",
        min_length=1,
        max_length=MAX_INSTANCE_ID_LENGTH,
        pattern=NO_CONTROL_CHARACTERS,
        description="Only this instance's events.",
    )
    limit: int = _limit()
    continuation: str | None = _continuation()


class InstancesQuery(_Wire):
    status: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$",
        description="Only instances whose rebuilt status is this (Marain: initializing, waiting, "
        "processingTransition, faulted, complete; also cancelled).",
    )
    workflow_id: str | None = Field(
        default=None,
        alias="workflowId",
        min_length=1,
        max_length=512,
        pattern=NO_CONTROL_CHARACTERS,
        description="Only instances of this workflow.",
    )
    updated_from: Rfc3339 | None = Field(
        default=None,
        alias="updatedFrom",
        description="Only instances whose last event was recorded at or after this (RFC 3339 with an offset).",
    )
    updated_to: Rfc3339 | None = Field(
        default=None,
        alias="updatedTo",
        description="Only instances whose last event was recorded before this (RFC 3339 with an offset).",
    )
    limit: int = _limit()
    continuation: str | None = _continuation()
    min_position: int | None = _min_position()


# --- request bodies ---------------------------------------------------------------------------------


class TenantPlacementRequest(_Wire):
    """Where to place a new tenant; every member is optional (defaults derive from the tenant id)."""

    dsn_name: str | None = Field(default=None, alias="dsnName", min_length=1, max_length=64)
    schema_name: str | None = Field(default=None, alias="schema", min_length=1, max_length=63)
    container: str | None = Field(default=None, min_length=3, max_length=63)


# --- responses --------------------------------------------------------------------------------------


class TenantPlacementResponse(_Wire):
    tenant_id: str = Field(alias="tenantId")
    dsn_name: str = Field(alias="dsnName")
    schema_name: str = Field(alias="schema")
    container: str


class MessageAccepted(_Wire):
    """A message recorded in the tenant's audit stream (or, when `repeated`, recorded before)."""

    event_id: str = Field(alias="eventId")
    sequence_number: int = Field(alias="sequenceNumber")
    global_position: int = Field(alias="globalPosition")
    repeated: bool


class OutcomesAppended(_Wire):
    """Where the events of an append were stored (the first append's positions when `repeated`)."""

    event_ids: list[str] = Field(alias="eventIds")
    sequence_numbers: list[int] = Field(alias="sequenceNumbers")
    global_positions: list[int] = Field(alias="globalPositions")
    version: int = Field(description="The stream's version after the append; use it in If-Match.")
    repeated: bool


class EventItem(_Wire):
    """One recorded event. `payload` is the exact stored JSON when it is JSON kept in the row; otherwise
    `payloadUrl` returns its bytes (and `payloadBase64` carries them in the envelope format)."""

    event_id: str = Field(alias="eventId")
    event_type: str = Field(alias="eventType")
    stream_id: str = Field(alias="streamId")
    sequence_number: int = Field(alias="sequenceNumber")
    global_position: int = Field(alias="globalPosition")
    workflow_id: str | None = Field(default=None, alias="workflowId")
    workflow_instance_id: str | None = Field(default=None, alias="workflowInstanceId")
    user_id: str | None = Field(default=None, alias="userId")
    correlation_id: str | None = Field(default=None, alias="correlationId")
    causation_id: str | None = Field(default=None, alias="causationId")
    source_system: str | None = Field(default=None, alias="sourceSystem")
    content_type: str = Field(alias="contentType")
    payload_sha256: str = Field(alias="payloadSha256", description="SHA-256 of the exact payload, hex.")
    payload_size: int = Field(alias="payloadSize")
    recorded_at: datetime = Field(alias="recordedAt")
    erasure_id: str | None = Field(
        default=None,
        alias="erasureId",
        description="The erasure that removed or redacted the payload (its event in the maintenance stream).",
    )
    redacted_sha256: str | None = Field(
        default=None,
        alias="redactedSha256",
        description="Set when an erasure redacted values in the payload: SHA-256 of the bytes it holds now, hex "
        "(payloadSha256 stays the hash of what was received).",
    )
    payload: JsonValue = Field(default=None, description="The payload, inline, when it is JSON stored in the row.")
    payload_text: str | None = Field(
        default=None,
        alias="payloadText",
        description="Instead of `payload`: the exact JSON text, as a string, when common parsers could not "
        "read it inline (an integer of more than 4,300 digits, which Python's json refuses, or nesting past "
        "900 levels).",
    )
    payload_url: str | None = Field(default=None, alias="payloadUrl", description="Where the exact payload is.")
    payload_base64: str | None = Field(
        default=None, alias="payloadBase64", description="Only with format=envelope: a non-JSON payload's bytes."
    )


class HistoryPage(_Wire):
    workflow_instance_id: str = Field(alias="workflowInstanceId")
    events: list[EventItem]
    continuation: str | None = Field(description="Pass it back for the next page; null at the end of the history.")


class AuditPage(_Wire):
    events: list[EventItem]
    continuation: str | None = Field(description="Pass it back for the next page; null when nothing more matches.")


class InstanceStateResponse(_Wire):
    """An instance's state rebuilt from its events (a projection; the events are the record)."""

    workflow_instance_id: str = Field(alias="workflowInstanceId")
    workflow_id: str | None = Field(default=None, alias="workflowId")
    state_id: str | None = Field(default=None, alias="stateId")
    status: str | None = None
    context: dict[str, JsonValue] = Field(default_factory=dict)
    last_sequence: int = Field(alias="lastSequence", description="The sequence the state was rebuilt at.")
    last_event_type: str | None = Field(default=None, alias="lastEventType")
    last_error: str | None = Field(default=None, alias="lastError")
    paused: bool = False


class InstancesPage(_Wire):
    instances: list[InstanceStateResponse]
    continuation: str | None = Field(description="Pass it back for the next page; null when every instance was seen.")


class Problem(BaseModel):
    """RFC 9457 problem details, with this API's extension members."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str = Field(description="A URN naming the kind of problem (urn:eventstore:problem:...).")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="The request path.")
    field: str | None = Field(default=None, description="The input member, parameter or header at fault.")
    actual_version: int | None = Field(default=None, alias="actualVersion", description="On 409: the stream's version.")
    last_sequence: int | None = Field(
        default=None, alias="lastSequence", description="On 404 unknown-sequence: the instance's last sequence."
    )
    valid_event_types: list[str] | None = Field(default=None, alias="validEventTypes")
    accepted: list[str] | None = Field(default=None, description="On 415: the content types accepted.")
    event_id: str | None = Field(default=None, alias="eventId")
    blob_ref: str | None = Field(default=None, alias="blobRef", description="On 410: the lost Blob reference.")
    size: int | None = None
    limit: int | None = None


# --- tenant health ------------------------------------------------------------------------------------

HEALTH_LIST_LIMIT = 100


class PayloadProblemItem(BaseModel):
    """An event whose payload could not be returned whole: its metadata is stored, its bytes are not."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    event_id: str = Field(alias="eventId")
    stream_id: str | None = Field(alias="streamId")
    sequence_number: int | None = Field(alias="sequenceNumber")
    blob_ref: str | None = Field(
        alias="blobRef", description="The lost Blob reference `<container>/<sha256 hex>`; null for an inline payload."
    )
    problem: Literal["missing", "mismatch"] = Field(
        description="`missing`: the blob is gone (a read answers 410 payload-missing); `mismatch`: the bytes no "
        "longer hash to the recorded SHA-256 (a read answers 500 payload-integrity)."
    )
    first_seen_at: datetime = Field(alias="firstSeenAt")
    last_seen_at: datetime = Field(alias="lastSeenAt")
    times_seen: int = Field(alias="timesSeen", description="Reads that met the problem.")


class RetentionHealth(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    retention_days: int = Field(alias="retentionDays")
    cutoff: AwareDatetime = Field(description="Payloads of events recorded before this are due for cold storage.")
    oldest_held_at: AwareDatetime | None = Field(
        alias="oldestHeldAt", description="The oldest event still holding its payload in its row."
    )
    held_past_cutoff: int = Field(alias="heldPastCutoff", description="Events past the cutoff still holding it.")
    archived_events: int = Field(alias="archivedEvents", description="Payloads moved to cold storage so far.")
    archived_bytes: int = Field(alias="archivedBytes", description="Their bytes.")
    segments: int = Field(description="Cold segments written (one PayloadsArchived event each).")


class TenantHealth(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    tenant_id: str = Field(alias="tenantId")
    payload_problem_count: int = Field(
        alias="payloadProblemCount",
        description="Events whose payload was found missing or altered when read (or by `eventstore payloads "
        "check`), and not found whole since.",
    )
    payload_problems: list[PayloadProblemItem] = Field(
        alias="payloadProblems", description=f"The most recently seen of them, at most {HEALTH_LIST_LIMIT}."
    )
    retention: RetentionHealth = Field(description="Where retention stands (docs/retention.md).")


# --- traces: messages, executions and steps, failure counts ------------------------------------------------

MessageStatus = Literal["received", "processing", "succeeded", "failed", "dead-lettered"]
RunStatus = Literal["started", "succeeded", "failed"]
StepStatus = Literal["started", "succeeded", "failed", "skipped"]
MessageEventType = Literal["TriggerReceived", "InstanceCreationRequestReceived"]


def _workflow_filter() -> str | None:
    return Field(
        default=None,
        alias="workflowId",
        min_length=1,
        max_length=512,
        pattern=NO_CONTROL_CHARACTERS,
        description="Only those of this workflow.",
    )


class ViewReadQuery(_Wire):
    """The query of a view read that takes no filters."""

    min_position: int | None = _min_position()


class MessagesQuery(_Wire):
    status: MessageStatus | None = Field(default=None, description="Only messages whose processing status is this.")
    event_type: MessageEventType | None = Field(
        default=None, alias="eventType", description="Only this kind of message."
    )
    workflow_id: str | None = _workflow_filter()
    received_from: Rfc3339 | None = Field(
        default=None, alias="from", description="Received at or after (RFC 3339 date-time with an offset)."
    )
    received_to: Rfc3339 | None = Field(
        default=None, alias="to", description="Received before (RFC 3339 date-time with an offset)."
    )
    limit: int = _limit()
    continuation: str | None = _continuation()
    min_position: int | None = _min_position()


class ExecutionsQuery(_Wire):
    status: RunStatus | None = Field(default=None, description="Only executions in this status.")
    workflow_id: str | None = _workflow_filter()
    replay_id: UUID | None = Field(
        default=None, alias="replayId", description="Only the executions this replay produced (its replay id)."
    )
    started_from: Rfc3339 | None = Field(
        default=None, alias="from", description="Started at or after (RFC 3339 date-time with an offset)."
    )
    started_to: Rfc3339 | None = Field(
        default=None, alias="to", description="Started before (RFC 3339 date-time with an offset)."
    )
    limit: int = _limit()
    continuation: str | None = _continuation()
    min_position: int | None = _min_position()


class StepsQuery(_Wire):
    idempotency_key: str = Field(
        alias="idempotencyKey",
        min_length=1,
        max_length=512,
        pattern=NO_CONTROL_CHARACTERS,
        description="The idempotency key the steps were recorded with.",
    )
    min_position: int | None = _min_position()


class FailureCountsQuery(_Wire):
    granularity: Literal["hour", "day"] = Field(
        default="hour", description="Buckets of one UTC hour, or of one UTC day (the sum of its hours)."
    )
    counted_from: Rfc3339 | None = Field(
        default=None,
        alias="from",
        description="The first bucket is the one holding this moment (RFC 3339 date-time with an offset).",
    )
    counted_to: Rfc3339 | None = Field(
        default=None, alias="to", description="Only buckets that start before this moment."
    )
    workflow_id: str | None = _workflow_filter()
    min_position: int | None = _min_position()


class UnplacedQuery(_Wire):
    limit: int = Field(default=100, ge=1, le=1000, description="Most events listed (the most recent first).")
    min_position: int | None = _min_position()


class TraceError(_Wire):
    """Why an execution or a step failed, and what the destination answered, when it did."""

    message: str
    status_code: int | None = Field(default=None, alias="statusCode")
    body: str | None = Field(default=None, description="The destination's answer (cut at 32 KiB; the event holds it).")


class MessageItem(_Wire):
    """A received message and how far its processing got (the messages view)."""

    event_id: str = Field(alias="eventId")
    event_type: MessageEventType = Field(alias="eventType")
    message_type: str = Field(alias="messageType", description="The trigger's name, or the event type.")
    source_system: str | None = Field(alias="sourceSystem")
    workflow_id: str | None = Field(alias="workflowId")
    workflow_instance_id: str | None = Field(alias="workflowInstanceId")
    operation_id: str | None = Field(alias="operationId")
    payload_sha256: str = Field(alias="payloadSha256", description="SHA-256 of the message as received, hex.")
    received_at: datetime = Field(alias="receivedAt")
    status: MessageStatus = Field(
        description="received; processing (its latest execution has not ended); succeeded, failed or "
        "dead-lettered (how its latest execution, or without one the engine's outcome, ended)."
    )
    latest_execution_id: str | None = Field(alias="latestExecutionId")
    attempts: int = Field(description="How many executions processed it.")
    updated_at: datetime = Field(alias="updatedAt")
    replay_count: int = Field(alias="replayCount", description="How many times it was replayed (sent to the router).")
    last_replay_id: str | None = Field(alias="lastReplayId", description="The last replay's id, when there was one.")
    last_replay_at: datetime | None = Field(alias="lastReplayAt", description="When the last replay was sent.")


class MessagesPage(_Wire):
    messages: list[MessageItem]
    continuation: str | None = Field(description="Pass it back for the next page; null when nothing more matches.")


class ExecutionItem(_Wire):
    """One attempt by an engine to process one received message."""

    execution_id: str = Field(alias="executionId")
    message_event_id: str | None = Field(alias="messageEventId")
    operation_id: str | None = Field(alias="operationId")
    workflow_id: str | None = Field(alias="workflowId")
    workflow_instance_id: str = Field(alias="workflowInstanceId")
    started_at: datetime = Field(alias="startedAt")
    completed_at: datetime | None = Field(alias="completedAt")
    status: RunStatus
    replay_of: str | None = Field(alias="replayOf")
    replay_id: str | None = Field(
        alias="replayId", description="The replay that produced this execution (its replay id), when one did."
    )
    error: TraceError | None
    dead_lettered: bool = Field(alias="deadLettered", description="The engine gave up on the message here.")


class ExecutionsPage(_Wire):
    executions: list[ExecutionItem]
    continuation: str | None = Field(description="Pass it back for the next page; null when nothing more matches.")


class MessageExecutions(_Wire):
    message_event_id: str = Field(alias="messageEventId")
    executions: list[ExecutionItem]


class StepAttempt(_Wire):
    attempt: int
    status: StepStatus
    started_at: datetime | None = Field(alias="startedAt")
    completed_at: datetime | None = Field(alias="completedAt")
    error: TraceError | None


class SkippedFor(_Wire):
    """The step that succeeded, whose output a skipped step reused."""

    execution_id: str = Field(alias="executionId")
    step_id: str = Field(alias="stepId")


class StepItem(_Wire):
    """One action inside an execution, over all its attempts."""

    execution_id: str = Field(alias="executionId")
    step_id: str = Field(alias="stepId")
    name: str | None
    status: StepStatus = Field(
        description="succeeded when any attempt completed; else skipped when a replay skipped it (a step with "
        "its idempotency key had succeeded); else failed when its last attempt failed; else started."
    )
    attempts: int = Field(description="The highest attempt reported.")
    idempotency_key: str | None = Field(alias="idempotencyKey")
    input: JsonValue = Field(description="The input of its last attempt, whole.")
    output: JsonValue = Field(
        description="The output it completed with, whole; for a skipped step, that of the step it reused."
    )
    input_event_id: str | None = Field(
        alias="inputEventId", description="Set when the input is over 64 KiB: the event that carried it."
    )
    output_event_id: str | None = Field(
        alias="outputEventId", description="Set when the output is over 64 KiB: the event that carried it."
    )
    error: TraceError | None = Field(description="Why its last attempt failed, while it has failed.")
    started_at: datetime | None = Field(alias="startedAt")
    completed_at: datetime | None = Field(alias="completedAt")
    attempt_history: list[StepAttempt] = Field(alias="attemptHistory", description="Each attempt, in order.")
    skipped_for: SkippedFor | None = Field(
        alias="skippedFor", description="For a skipped step: the step that succeeded, whose output it reused."
    )


class Trace(ExecutionItem):
    """An execution with its steps, in the order they were first reported: the whole trace."""

    steps: list[StepItem]


class StepsFound(_Wire):
    steps: list[StepItem] = Field(description="Those that succeeded first; at most 100.")


class FailureBucket(_Wire):
    start: datetime = Field(description="The start of the UTC hour or day.")
    workflow_id: str | None = Field(alias="workflowId")
    message_type: str | None = Field(alias="messageType", description="The trigger's name; null when unknown.")
    started: int
    succeeded: int
    failed: int
    dead_lettered: int = Field(alias="deadLettered")


class FailureCounts(_Wire):
    granularity: Literal["hour", "day"]
    buckets: list[FailureBucket]
    truncated: bool = Field(description="True when more buckets matched than one answer holds (10,000).")


class UnplacedTraceEvent(_Wire):
    event_id: str = Field(alias="eventId")
    event_type: str = Field(alias="eventType")
    execution_id: str | None = Field(alias="executionId")
    step_id: str | None = Field(alias="stepId")
    reason: str = Field(
        description="not-json, not-an-object, invalid-member, payload-not-inline, not-in-an-instance-stream, "
        "unknown-execution, step-in-two-executions or other-instance."
    )
    detail: str
    recorded_at: datetime = Field(alias="recordedAt")


class UnplacedTraceEvents(_Wire):
    count: int = Field(description="Every trace event the executions view could not place.")
    events: list[UnplacedTraceEvent] = Field(description="The most recently recorded of them.")
