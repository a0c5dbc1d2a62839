"""The event types the store accepts: one enum, member by member.

The value is what is stored in the `event_type` column and what the change feed derives its CloudEvents
`type` from, so values are never renamed once released.
"""

from __future__ import annotations

from enum import StrEnum

from eventstore.errors import InvalidEventType


class EventType(StrEnum):
    TRIGGER_RECEIVED = "TriggerReceived"
    """A `HostedWorkflowTrigger` arrived at the engine's front door (tenant audit stream)."""

    INSTANCE_CREATION_REQUEST_RECEIVED = "InstanceCreationRequestReceived"
    """A `StartWorkflowInstanceRequest` arrived at the engine's front door (tenant audit stream)."""

    INSTANCE_CREATED = "InstanceCreated"
    """The engine created the instance: workflow id, initial state, status and context."""

    INSTANCE_CREATION_FAILED = "InstanceCreationFailed"
    """The engine could not create the instance (unknown workflow, invalid context...)."""

    TRANSITION_COMPLETED = "TransitionCompleted"
    """A trigger moved the instance through a transition: previous and new state, status, context."""

    TRANSITION_FAILED = "TransitionFailed"
    """A transition failed and the instance faulted (Marain's `instance.faulted`)."""

    WORKFLOW_STARTED = "WorkflowStarted"
    """The instance began executing (engines that separate creation from start)."""

    STEP_STARTED = "StepStarted"
    """An action or step of a transition began."""

    STEP_COMPLETED = "StepCompleted"
    """An action or step finished successfully; replay skips steps recorded here."""

    STEP_FAILED = "StepFailed"
    """An action or step failed; the payload says why."""

    DECISION_MADE = "DecisionMade"
    """A condition or decision point was evaluated, with its outcome."""

    USER_INPUT = "UserInput"
    """A person supplied input to the instance."""

    AGENT_RESPONSE = "AgentResponse"
    """An automated agent (service, model) answered the instance."""

    STATE_CHANGED = "StateChanged"
    """The instance's state, status or context changed outside a transition."""

    ERROR = "Error"
    """An error worth recording that did not by itself fault the instance."""

    WORKFLOW_PAUSED = "WorkflowPaused"
    """The instance was paused; triggers are not processed until it resumes."""

    WORKFLOW_RESUMED = "WorkflowResumed"
    """A paused instance resumed."""

    WORKFLOW_CANCELLED = "WorkflowCancelled"
    """The instance was cancelled; it ends here."""

    WORKFLOW_COMPLETED = "WorkflowCompleted"
    """The instance reached its end."""

    EXECUTION_STARTED = "ExecutionStarted"
    """An engine began one attempt to process one received message: the execution id and the message it
    processes (its event id or operationId), and the execution it replays, if any (docs/traces.md)."""

    EXECUTION_COMPLETED = "ExecutionCompleted"
    """An execution finished successfully: every step it ran succeeded."""

    EXECUTION_FAILED = "ExecutionFailed"
    """An execution ended in failure: why, the destination's answer, and whether the engine gave up on
    the message (dead-lettered it)."""

    STEP_SKIPPED = "StepSkipped"
    """A replaying execution did not run a step: a step with the same idempotency key already succeeded
    (named in the payload), and its recorded output was reused."""

    REPLAY_REQUESTED = "ReplayRequested"
    """Someone asked for stored messages to be sent to the engine's router again (tenant audit stream):
    one message or a bulk job's filter, who asked, why, and where they go (docs/replay.md)."""

    MESSAGE_REPLAYED = "MessageReplayed"
    """A stored message was sent to the engine's router as a replay: the replay id, the original message,
    its job and the router (tenant audit stream)."""

    REPLAY_JOB_CHANGED = "ReplayJobChanged"
    """A replay job was paused, resumed, cancelled or finished: by whom or why, and its counts (tenant
    audit stream)."""

    PAYLOADS_ARCHIVED = "PayloadsArchived"
    """Retention moved a batch of payloads to a cold segment (tenant maintenance stream): the segment, its
    container and tier, the events' count, positions and times, the bytes moved, a manifest hash over each
    event's id, payload hash and place in the segment, who and why; never the payloads (docs/retention.md)."""

    PARTITION_COMPACTED = "PartitionCompacted"
    """Retention rewrote a month's partition once all its payloads had moved to cold storage, so that the
    database gives the space back (tenant maintenance stream): the partition, its bytes before and after,
    how long its lock was held, who and why; its rows (the metadata record) are all still there."""

    PAYLOADS_ERASED = "PayloadsErased"
    """An erasure removed a data subject's payloads (tenant maintenance stream; its event id is the erasure
    id): the subject's kind and SHA-256 (never its value), which events, who and why. Reads of those events
    answer that they were erased, and by this erasure."""

    SEGMENTS_DELETED = "SegmentsDeleted"
    """Retention deleted cold segments that no `PayloadsArchived` record names (an archiver killed between
    writing a segment and committing its batch left them; no row points at them): the container, the
    segments, their bytes, who and why (tenant maintenance stream)."""

    DATA_KEYS_REWRAPPED = "DataKeysRewrapped"
    """Retention re-wrapped archived payloads' data keys under the current archive key after a rotation: how
    many, the key ids from and to, who and why (tenant maintenance stream). No segment is rewritten."""

    @classmethod
    def parse(cls, value: object) -> EventType:
        """The member for `value` (its stored name), or `InvalidEventType` listing the valid ones."""
        if isinstance(value, EventType):
            return value
        member = _BY_VALUE.get(value) if isinstance(value, str) else None
        if member is None:
            raise InvalidEventType(value, [m.value for m in cls])
        return member


_BY_VALUE: dict[str, EventType] = {m.value: m for m in EventType}

RECORDED_BY_THE_STORE = frozenset(
    {
        EventType.REPLAY_REQUESTED,
        EventType.MESSAGE_REPLAYED,
        EventType.REPLAY_JOB_CHANGED,
        EventType.PAYLOADS_ARCHIVED,
        EventType.PARTITION_COMPACTED,
        EventType.PAYLOADS_ERASED,
        EventType.SEGMENTS_DELETED,
        EventType.DATA_KEYS_REWRAPPED,
    }
)
"""Types only the store itself records (the replays' audit trail, the maintenance path's): the ingest routes
refuse them, so that no client can forge who replayed or archived what."""
