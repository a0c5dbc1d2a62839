"""The wire models: Marain's message envelope, our own outcome event and Marain engine CloudEvents.

They validate the members ingest reads and describe the bodies in the OpenAPI document; the bytes that
are stored are always the client's own (`json_spans`), never these models re-serialised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictBool, StrictStr
from pydantic.config import JsonDict

from eventstore.event_types import RECORDED_BY_THE_STORE, EventType
from eventstore.ingest.content_types import JSON_MEDIA_TYPE_PATTERN
from eventstore.models import JSON_CONTENT_TYPE
from eventstore.store import NO_CONTROL_CHARACTERS
from eventstore.tenancy import TENANT_ID_PATTERN

# The one place Marain engine CloudEvent types meet our event types.
CLOUDEVENT_TYPES: Mapping[str, EventType] = {
    "io.marain.workflow.instance.created": EventType.INSTANCE_CREATED,
    "io.marain.workflow.instance.transition-completed": EventType.TRANSITION_COMPLETED,
    "io.marain.workflow.instance.faulted": EventType.TRANSITION_FAILED,
}


class _WireModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)


# ---------------------------------------------------------------------------------------------------
# Messages: WorkflowMessageEnvelope


class HostedWorkflowTrigger(_WireModel):
    """Marain's `HostedWorkflowTrigger` (only what ingest reads; other members are kept in the bytes)."""

    id: StrictStr | None = None
    trigger_name: StrictStr | None = Field(default=None, alias="triggerName")
    subjects: list[StrictStr] = Field(default_factory=list)


class StartWorkflowInstanceRequest(_WireModel):
    """Marain's `StartWorkflowInstanceRequest`."""

    workflow_id: StrictStr = Field(
        alias="workflowId", min_length=1, json_schema_extra={"maxLength": 512, "pattern": r"^[^\x00]*$"}
    )
    workflow_instance_id: StrictStr | None = Field(
        default=None,
        alias="workflowInstanceId",
        min_length=1,
        description="1-256 characters, no control characters, not `.` or `..`.",
        json_schema_extra={"maxLength": 256, "pattern": NO_CONTROL_CHARACTERS, "not": {"enum": [".", ".."]}},
    )
    request_id: StrictStr | None = Field(default=None, alias="requestId")


# What `parse_envelope` checks, said in the schema (OpenAPI) too: exactly one of the two kinds, with its part.
_ONE_KIND_OF_ENVELOPE: JsonDict = {
    "oneOf": [
        {
            "properties": {"isTrigger": {"const": True}, "isStartWorkflowRequest": {"const": False},
                           "trigger": {"type": "object"}},
            "required": ["isTrigger", "trigger"],
        },
        {
            "properties": {"isStartWorkflowRequest": {"const": True}, "isTrigger": {"const": False},
                           "startWorkflowInstanceRequest": {"type": "object"}},
            "required": ["isStartWorkflowRequest", "startWorkflowInstanceRequest"],
        },
    ]
}  # fmt: skip


class WorkflowMessageEnvelope(_WireModel):
    """Marain's `WorkflowMessageEnvelope`: a trigger or a start request for one tenant."""

    model_config = ConfigDict(json_schema_extra=_ONE_KIND_OF_ENVELOPE)

    tenant_id: StrictStr = Field(
        alias="tenantId",
        description="The tenant the message is for: the route's tenant (or, on the queue, the one it names).",
        json_schema_extra={"pattern": TENANT_ID_PATTERN},
    )
    operation_id: StrictStr = Field(
        alias="operationId",
        description="A UUID; the stored event's id, so a redelivered message is recorded once.",
        json_schema_extra={"format": "uuid"},
    )
    is_trigger: StrictBool = Field(default=False, alias="isTrigger")
    is_start_workflow_request: StrictBool = Field(default=False, alias="isStartWorkflowRequest")
    trigger: HostedWorkflowTrigger | None = None
    start_workflow_instance_request: StartWorkflowInstanceRequest | None = Field(
        default=None, alias="startWorkflowInstanceRequest"
    )
    properties: dict[str, JsonValue] = Field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# Outcomes: our own event shape, or Marain engine CloudEvents

# What the store refuses in text it keeps in columns, said in the schema (the checks themselves are the
# store's, with their own messages): PostgreSQL text cannot hold NUL; ids hold no control characters.
_NO_NUL: JsonDict = {"pattern": r"^[^\x00]*$"}
_TEXT: JsonDict = {"maxLength": 512, "pattern": r"^[^\x00]*$"}


class OutcomeEvent(BaseModel):
    """Our own outcome shape. `payload` is any JSON value; it is stored as the exact text sent."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    event_id: UUID = Field(alias="eventId")
    event_type: StrictStr = Field(
        alias="eventType",
        description="One of the event types (`EventType`) but those the store records itself (replays).",
        json_schema_extra={"enum": [t.value for t in EventType if t not in RECORDED_BY_THE_STORE]},
    )
    payload: JsonValue = Field(description="Any JSON value; stored byte-exact as written in the request.")
    user_id: StrictStr | None = Field(default=None, alias="userId", max_length=512, json_schema_extra=_NO_NUL)
    correlation_id: StrictStr | None = Field(
        default=None, alias="correlationId", max_length=512, json_schema_extra=_NO_NUL
    )
    causation_id: StrictStr | None = Field(default=None, alias="causationId", max_length=512, json_schema_extra=_NO_NUL)
    source_system: StrictStr | None = Field(
        default=None, alias="sourceSystem", max_length=512, json_schema_extra=_NO_NUL
    )
    workflow_id: StrictStr | None = Field(
        default=None, alias="workflowId", min_length=1, max_length=512, json_schema_extra=_NO_NUL
    )
    content_type: StrictStr = Field(
        default=JSON_CONTENT_TYPE,
        alias="contentType",
        description="A JSON media type (application/json, text/json or */*+json): the payload is JSON text.",
        json_schema_extra={"maxLength": 255, "pattern": JSON_MEDIA_TYPE_PATTERN},
    )


class EngineCloudEvent(_WireModel):
    """A CloudEvent 1.0 emitted by the Marain engine (structured mode). Extension attributes are kept."""

    id: StrictStr = Field(min_length=1)
    source: StrictStr = Field(min_length=1, json_schema_extra=_TEXT)
    specversion: Literal["1.0"]
    type: StrictStr = Field(json_schema_extra={"enum": list(CLOUDEVENT_TYPES)})
    subject: StrictStr | None = Field(
        default=None,
        description="The workflow instance id: the route's instance.",
        json_schema_extra={"maxLength": 256, "pattern": NO_CONTROL_CHARACTERS, "not": {"enum": [".", ".."]}},
    )
    time: StrictStr | None = None
    datacontenttype: StrictStr | None = None
    data: JsonValue = None
    maraintenantid: StrictStr | None = Field(
        default=None,
        description="The tenant: the route's (or, on the queue, the one it names).",
        json_schema_extra={"pattern": TENANT_ID_PATTERN},
    )
    userid: StrictStr | None = Field(default=None, json_schema_extra=_TEXT)
    correlationid: StrictStr | None = Field(default=None, json_schema_extra=_TEXT)
    causationid: StrictStr | None = Field(default=None, json_schema_extra=_TEXT)
