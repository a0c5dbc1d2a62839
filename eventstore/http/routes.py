"""The route table: every HTTP function's route, method, auth level, inputs and answers, in one place.

Blueprints register their handlers through `http_function`, which takes route, method and auth level
from here; the OpenAPI document (`eventstore.http.openapi`) is generated from the same entries. A test
checks that the registered functions and the document name the same operations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import azure.functions as func
from pydantic import BaseModel, Field

from eventstore.http import models
from eventstore.http.problems import Handler, answers_problems
from eventstore.ingest import (
    CLOUDEVENT_BATCH_CONTENT_TYPE,
    CLOUDEVENT_CONTENT_TYPE,
    ENVELOPE_CONTENT_TYPE,
    EngineCloudEvent,
    OutcomeEvent,
    WorkflowMessageEnvelope,
)
from eventstore.models import JSON_CONTENT_TYPE
from eventstore.store import NO_CONTROL_CHARACTERS
from eventstore.tenancy import TENANT_ID_PATTERN

PATH_PARAMETERS: Mapping[str, dict[str, Any]] = {
    "tenantId": {
        "description": "Marain tenant id: lowercase hex, 32 characters per level (at most 8), or a GUID.",
        "schema": {"type": "string", "pattern": TENANT_ID_PATTERN},
    },
    "instanceId": {
        "description": "The workflow instance id: 1-256 characters, no control characters, not `.` or `..`.",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": 256,
            "pattern": NO_CONTROL_CHARACTERS,
            "not": {"enum": [".", ".."]},
        },
    },
    "eventId": {"description": "The event id (a UUID).", "schema": {"type": "string", "format": "uuid"}},
}


@dataclass(frozen=True)
class Header:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Body:
    """A request body: the content types taken and the shape (a pydantic type) of each."""

    content: Mapping[str, Any]
    description: str
    required: bool = True
    example: Any = None


@dataclass(frozen=True)
class Reply:
    status: int
    description: str
    model: Any = None
    """A pydantic model or type whose JSON schema describes the body; None for no body or raw bytes."""
    content_type: str | None = JSON_CONTENT_TYPE
    headers: tuple[Header, ...] = ()
    example: Any = None


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    route: str
    auth_level: str
    summary: str
    description: str
    tag: str
    replies: tuple[Reply, ...]
    errors: tuple[int, ...] = ()
    query: type[BaseModel] | None = None
    headers: tuple[Header, ...] = ()
    body: Body | None = None

    @property
    def path_parameters(self) -> list[str]:
        return [part[1:-1] for part in self.route.split("/") if part.startswith("{") and part.endswith("}")]


_TENANT = "75b9261673c2714681f14c97bc0439fb45a820d625de884bb5a127d6b1104f82"
_INSTANCE = "eddee27b-52e7-4c33-a82e-891fc4b359e4"
_EVENT_ITEM_EXAMPLE: dict[str, Any] = {
    "eventId": "183154e3-4db4-4e5a-946d-ddc147e5ad44",
    "eventType": "TransitionCompleted",
    "streamId": f"instance:{_INSTANCE}",
    "sequenceNumber": 2,
    "globalPosition": 17,
    "workflowId": "simple-expenses-workflow",
    "workflowInstanceId": _INSTANCE,
    "sourceSystem": "azuresubscriptionid.workflowresourcegroupname",
    "contentType": CLOUDEVENT_CONTENT_TYPE,
    "payloadSha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "payloadSize": 1234,
    "recordedAt": "2024-05-01T09:31:47.091254+00:00",
    "payload": {"specversion": "1.0", "type": "io.marain.workflow.instance.transition-completed"},
}
_STATE_EXAMPLE: dict[str, Any] = {
    "workflowInstanceId": _INSTANCE,
    "workflowId": "simple-expenses-workflow",
    "stateId": "waiting-for-approval",
    "status": "waiting",
    "context": {"Claimant": "J George", "CostCenter": "GD3724"},
    "lastSequence": 2,
    "lastEventType": "TransitionCompleted",
    "paused": False,
}
_PLACEMENT_EXAMPLE = {
    "tenantId": _TENANT,
    "dsnName": "default",
    "schema": "es_0c4b9a3f6e2d4b1a9c8e7f6a5b4c3d2e1f0a9b8c",
    "container": "3c0f4c0cc8f4e6a1d7c0c5b0c7e1c2b3a4d5e6f7",
}
_FEED_EXAMPLE: dict[str, Any] = {
    "tenantId": _TENANT,
    "enabled": True,
    "sinks": [
        {
            "name": "eventgrid",
            "kind": "eventgrid",
            "enabled": True,
            "checkpoint": "7421:1988",
            "pendingEvents": 3,
            "oldestPendingAgeSeconds": 0.42,
            "deadLetters": 0,
            "lastSuccessAt": "2024-05-01T09:31:47.091254+00:00",
            "failingSince": None,
            "lastError": None,
        }
    ],
    "oldestWritingTransaction": None,
}
EXAMPLE_TENANT = _TENANT
EXAMPLE_CONTINUATION = "<an audit continuation of the example tenant>"
"""Replaced, when the document is served, by a token signed with the deployment's key (an example is
only worth showing if the API would take it)."""

_LOCATION = Header("Location", "Where the stored event can be read.")
_ETAG_VERSION = Header("ETag", 'The stream\'s version after the append, quoted ("5"): send it as If-Match.')

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        name="post_message",
        method="POST",
        route="tenants/{tenantId}/messages",
        auth_level="FUNCTION",
        tag="ingest",
        summary="Record a message received by the engine's front door",
        description="The body is a Marain WorkflowMessageEnvelope (a trigger or a start request). It is recorded "
        "byte-exact in the tenant's audit stream as TriggerReceived or InstanceCreationRequestReceived, with the "
        "envelope's operationId as event id: sending the same message again answers the same positions with "
        "repeated=true and stores nothing. The envelope's tenantId must be the route's tenant.",
        body=Body(
            {JSON_CONTENT_TYPE: WorkflowMessageEnvelope, ENVELOPE_CONTENT_TYPE: WorkflowMessageEnvelope},
            "A WorkflowMessageEnvelope.",
        ),
        replies=(
            Reply(
                202,
                "Recorded (or recorded before, when repeated).",
                models.MessageAccepted,
                headers=(_LOCATION,),
                example={
                    "eventId": "7e7033bf-3e51-4df6-94d0-a51fc0f9afc3",
                    "sequenceNumber": 12,
                    "globalPosition": 40,
                    "repeated": False,
                },
            ),
        ),
        errors=(400, 404, 409, 413, 415, 503),
    ),
    Operation(
        name="append_outcomes",
        method="POST",
        route="tenants/{tenantId}/instances/{instanceId}/events",
        auth_level="FUNCTION",
        tag="ingest",
        summary="Append outcome events to a workflow instance's history",
        description="One event or a JSON array of events, appended atomically. Each item is either "
        "`{eventId, eventType, payload, userId?, correlationId?, causationId?, sourceSystem?, workflowId?, "
        "contentType?}` (payload: any JSON, stored exactly as written) or a Marain engine CloudEvent "
        "(io.marain.workflow.instance.created / transition-completed / faulted), stored exactly as received. "
        'If-Match: "<n>" appends only when the stream\'s version is n (0: only to a new stream; *: only to an '
        "existing one); otherwise 409 with actualVersion. Repeating an append answers its first positions.",
        headers=(
            Header(
                "If-Match",
                'Expected stream version, quoted ("5"), or * for "the stream exists".',
                {"type": "string", "pattern": r'^\s*(?:"\d{1,18}"|\d{1,18}|\*)\s*$'},
            ),
        ),
        body=Body(
            {
                JSON_CONTENT_TYPE: OutcomeEvent
                | EngineCloudEvent
                | Annotated[list[OutcomeEvent | EngineCloudEvent], Field(min_length=1)],
                CLOUDEVENT_CONTENT_TYPE: EngineCloudEvent,
                CLOUDEVENT_BATCH_CONTENT_TYPE: Annotated[list[EngineCloudEvent], Field(min_length=1)],
            },
            "Outcome events.",
        ),
        replies=(
            Reply(
                201,
                "Appended (or appended before, when repeated).",
                models.OutcomesAppended,
                headers=(_LOCATION, _ETAG_VERSION),
                example={
                    "eventIds": ["6f1c2f9e-54a4-4a55-8b0b-0b7e8b3c7c11"],
                    "sequenceNumbers": [3],
                    "globalPositions": [41],
                    "version": 3,
                    "repeated": False,
                },
            ),
        ),
        errors=(400, 404, 409, 413, 415, 503),
    ),
    Operation(
        name="put_tenant",
        method="PUT",
        route="tenants/{tenantId}",
        auth_level="ADMIN",
        tag="tenants",
        summary="Onboard a tenant (idempotent)",
        description="Creates or migrates the tenant's schema and registers where its data lives. The optional "
        "body places it (named DSN, schema, Blob container); without it the placement derives from the tenant "
        "id. Repeating the call answers 200 with the same placement; asking to move a tenant answers 409.",
        body=Body(
            {JSON_CONTENT_TYPE: models.TenantPlacementRequest},
            "Optional placement.",
            required=False,
            example={"dsnName": "default"},
        ),
        replies=(
            Reply(
                201, "Onboarded now.", models.TenantPlacementResponse, headers=(_LOCATION,), example=_PLACEMENT_EXAMPLE
            ),
            Reply(
                200,
                "Already onboarded (schema migrated if needed).",
                models.TenantPlacementResponse,
                example=_PLACEMENT_EXAMPLE,
            ),
        ),
        errors=(400, 409, 415, 503),
    ),
    Operation(
        name="get_tenant",
        method="GET",
        route="tenants/{tenantId}",
        auth_level="FUNCTION",
        tag="tenants",
        summary="Where a tenant's data lives",
        description="The tenant's placement, or 404 when it was never onboarded.",
        replies=(Reply(200, "The placement.", models.TenantPlacementResponse, example=_PLACEMENT_EXAMPLE),),
        errors=(400, 404, 503),
    ),
    Operation(
        name="get_history",
        method="GET",
        route="tenants/{tenantId}/instances/{instanceId}/events",
        auth_level="FUNCTION",
        tag="query",
        summary="A workflow instance's history, in order",
        description="Events in sequence order from fromSequence. JSON payloads kept in the row are inline "
        "(exactly as stored); others are linked by payloadUrl. Pages continue with `continuation`, which is "
        "stable while events are appended.",
        query=models.HistoryQuery,
        replies=(
            Reply(
                200,
                "One page of the history.",
                models.HistoryPage,
                example={"workflowInstanceId": _INSTANCE, "events": [_EVENT_ITEM_EXAMPLE], "continuation": None},
            ),
        ),
        errors=(400, 404, 503),
    ),
    Operation(
        name="get_state",
        method="GET",
        route="tenants/{tenantId}/instances/{instanceId}/state",
        auth_level="FUNCTION",
        tag="query",
        summary="A workflow instance's state, rebuilt at any point",
        description="The state folded from the instance's events up to atSequence (default: all of them).",
        query=models.StateQuery,
        replies=(Reply(200, "The rebuilt state.", models.InstanceStateResponse, example=_STATE_EXAMPLE),),
        errors=(400, 404, 503),
    ),
    Operation(
        name="get_event",
        method="GET",
        route="tenants/{tenantId}/events/{eventId}",
        auth_level="FUNCTION",
        tag="query",
        summary="One event's exact payload",
        description="The exact bytes received, from the row or Blob storage, their SHA-256 verified, with the "
        "stored content type; ETag is the SHA-256 and X-Event-* headers carry the metadata. With "
        "format=envelope: the metadata and the payload as one JSON document.",
        query=models.EventQuery,
        replies=(
            Reply(
                200,
                "The payload (format=raw, with its stored content type) or the event (format=envelope).",
                models.EventItem,
                content_type=None,
                headers=(
                    Header("ETag", "SHA-256 of the payload, hex, quoted."),
                    Header("X-Event-Id", "The event id."),
                    Header("X-Event-Type", "The event type."),
                    Header("X-Event-Stream", "The stream id."),
                    Header("X-Event-Sequence", "The sequence number in its stream."),
                    Header("X-Event-Global-Position", "The position on the tenant's all-stream."),
                    Header("X-Event-Recorded-At", "When it was recorded (RFC 3339)."),
                ),
                example=_EVENT_ITEM_EXAMPLE,
            ),
            Reply(304, "Not modified (If-None-Match matched the ETag).", content_type=None),
        ),
        errors=(400, 404, 410, 503),
    ),
    Operation(
        name="search_audit",
        method="GET",
        route="tenants/{tenantId}/audit",
        auth_level="FUNCTION",
        tag="query",
        summary="Search the tenant's events by time, type, workflow and instance",
        description="Every stream of the tenant (the audit stream of received messages and every instance's "
        "outcomes), in commit order. Pages continue with `continuation`; a page never skips an event that "
        "commits late.",
        query=models.AuditQuery,
        replies=(
            Reply(
                200,
                "One page of matches.",
                models.AuditPage,
                example={"events": [_EVENT_ITEM_EXAMPLE], "continuation": EXAMPLE_CONTINUATION},
            ),
        ),
        errors=(400, 404, 503),
    ),
    Operation(
        name="list_instances",
        method="GET",
        route="tenants/{tenantId}/instances",
        auth_level="FUNCTION",
        tag="query",
        summary="Workflow instances, optionally by status (faulted...)",
        description="Instances in id order with their rebuilt state; status=faulted lists faulted instances. "
        "A page may hold fewer than limit instances and still have a continuation.",
        query=models.InstancesQuery,
        replies=(
            Reply(
                200,
                "One page of instances.",
                models.InstancesPage,
                example={"instances": [{**_STATE_EXAMPLE, "status": "faulted"}], "continuation": None},
            ),
        ),
        errors=(400, 404, 503),
    ),
    Operation(
        name="get_feed_health",
        method="GET",
        route="tenants/{tenantId}/feed",
        auth_level="FUNCTION",
        tag="feed",
        summary="The tenant's change feed: how far each sink got, and what holds it back",
        description="Per sink: checkpoint, events pending and the age of the oldest, dead letters, and the last "
        "failure while a sink keeps failing. Also the oldest open writing transaction on the database: the feed "
        "never passes it, so a forgotten open transaction shows here as a growing age.",
        replies=(Reply(200, "The feed's health.", models.FeedHealth, example=_FEED_EXAMPLE),),
        errors=(400, 404, 503),
    ),
    Operation(
        name="get_tenant_health",
        method="GET",
        route="tenants/{tenantId}/health",
        auth_level="FUNCTION",
        tag="query",
        summary="The tenant's health: events whose payload is lost",
        description="Events whose payload was found missing from Blob storage (a read answers 410 "
        "payload-missing, naming the blob) or no longer matching its SHA-256, the most recently seen first. "
        "Found when read, or by `eventstore payloads check`.",
        replies=(Reply(200, "The tenant's health.", models.TenantHealth),),
        errors=(400, 404, 503),
    ),
    Operation(
        name="get_openapi",
        method="GET",
        route="openapi.json",
        auth_level="ANONYMOUS",
        tag="meta",
        summary="This document",
        description="The OpenAPI 3.1 description of this API.",
        replies=(Reply(200, "The OpenAPI document.", dict[str, Any], example={"openapi": "3.1.0"}),),
    ),
)

BY_NAME: Mapping[str, Operation] = {op.name: op for op in OPERATIONS}


def http_function(blueprint: func.Blueprint, name: str) -> Callable[[Handler], Handler]:
    """Register `handler` as the HTTP function `name` of the table, answering every error as problem+json."""
    op = BY_NAME[name]

    def register(handler: Handler) -> Handler:
        wrapped = answers_problems(handler)
        route = blueprint.route(route=op.route, methods=[op.method], auth_level=func.AuthLevel[op.auth_level])
        blueprint.function_name(name)(route(wrapped))
        return wrapped

    return register
