"""Ingest: the wire shapes the HTTP and queue functions accept, mapped to `NewEvent`s and appended.

Pure domain: no Azure Functions imports, callable and testable without the runtime.

Messages (`POST /api/tenants/{tenantId}/messages`, queue `workflow-messages`)
    The body is a Marain `WorkflowMessageEnvelope` (`eventstore/samples/envelope-*.json`). On the queue
    the tenant is the envelope's `tenantId`; over HTTP it must equal the route's tenant. The envelope
    is recorded in the tenant's audit stream, byte-exact, as `TriggerReceived` (`isTrigger`) or
    `InstanceCreationRequestReceived` (`isStartWorkflowRequest`), with the `operationId` as event id:
    the same message delivered twice is the same event, stored once.

Outcomes (`POST /api/tenants/{tenantId}/instances/{instanceId}/events`, queue `workflow-outcomes`)
    One event or a batch (a JSON array, appended atomically). Each item is either
    (a) our own shape: `{"eventId", "eventType", "payload", "userId"?, "correlationId"?, "causationId"?,
        "sourceSystem"?, "workflowId"?, "contentType"?}` where `payload` is any JSON value, stored as
        the exact text the client wrote (never re-serialised), or
    (b) a Marain engine CloudEvent (`specversion` present; `engine-cloudevents.json`), stored as its
        exact bytes with content type `application/cloudevents+json`. Its `id` is the event id when it
        is a UUID, otherwise `uuid5(CLOUDEVENT_ID_NAMESPACE, json.dumps([source, id]))` (CloudEvents
        identify an event by source + id). Optional extension attributes `userid`, `correlationid`
        and `causationid` fill the matching metadata; `source` becomes the source system.
    On the `workflow-outcomes` queue a message is either
        `{"tenantId": ..., "workflowInstanceId": ..., "events": [<item>, ...]}`, or
        a single engine CloudEvent (tenant = `maraintenantid`, instance = `subject` or
        `data.workflowInstanceId`), or a JSON array of such CloudEvents (all of one tenant and instance).

Queue messages are base64 on the wire (host.json `messageEncoding`); the functions receive the decoded
bytes, which is what these functions take.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictBool, StrictStr, ValidationError
from pydantic.config import JsonDict

from eventstore.errors import InvalidInput, UnsupportedContentType
from eventstore.event_types import EventType
from eventstore.models import (
    JSON_CONTENT_TYPE,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    StreamState,
    invalid_input_from,
    is_json_content_type,
)
from eventstore.payload_json import MAX_JSON_DEPTH, nests_deeper_than
from eventstore.store import (
    AUDIT_STREAM_ID,
    NO_CONTROL_CHARACTERS,
    EventStore,
    instance_stream_id,
    validate_instance_id,
)
from eventstore.tenancy import TENANT_ID_PATTERN, validate_tenant_id

_M = TypeVar("_M", bound=BaseModel)

CLOUDEVENT_CONTENT_TYPE = "application/cloudevents+json"
CLOUDEVENT_BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
ENVELOPE_CONTENT_TYPE = "application/vnd.marain.workflows.hosted.messageenvelope"

# The one place Marain engine CloudEvent types meet our event types.
CLOUDEVENT_TYPES: Mapping[str, EventType] = {
    "io.marain.workflow.instance.created": EventType.INSTANCE_CREATED,
    "io.marain.workflow.instance.transition-completed": EventType.TRANSITION_COMPLETED,
    "io.marain.workflow.instance.faulted": EventType.TRANSITION_FAILED,
}

CLOUDEVENT_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:eventstore:cloudevent-id")
"""Namespace of the uuid5 that stands in for a CloudEvent `id` that is not a UUID."""

MESSAGE_CONTENT_TYPES = (JSON_CONTENT_TYPE, ENVELOPE_CONTENT_TYPE)
OUTCOME_CONTENT_TYPES = (JSON_CONTENT_TYPE, CLOUDEVENT_CONTENT_TYPE, CLOUDEVENT_BATCH_CONTENT_TYPE)


# ---------------------------------------------------------------------------------------------------
# Exact spans of JSON values. JSON is parsed value by value with `raw_decode` on the decoded text, so
# the text of each member is known exactly and can be stored as the client wrote it.

_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_int(text: str) -> int | float:
    # Python refuses to convert integers of more than 4300 digits; JSON allows them. Only the payload's
    # text is stored, so a stand-in value is enough.
    return int(text) if len(text) <= 4000 else float(text)


_WRAPPER_LEVELS = 3
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_int=_parse_int)


@dataclass(frozen=True, slots=True)
class Span:
    """A JSON value and where its text lies in the document (character offsets)."""

    value: Any
    start: int
    end: int


class _Document:
    """A JSON text, decoded from UTF-8, walked member by member."""

    def __init__(self, raw: bytes, what: str) -> None:
        self.what = what
        self.raw = raw
        try:
            self.text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})", field="body") from None

    def bytes_of(self, span: Span) -> bytes:
        # The text came from strict UTF-8 decoding, so encoding a slice gives back the exact bytes.
        return self.text[span.start : span.end].encode("utf-8")

    def _skip(self, index: int) -> int:
        match = _WHITESPACE.match(self.text, index)
        assert match is not None
        return match.end()

    def _fail(self, message: str, index: int) -> InvalidInput:
        line = self.text.count("\n", 0, index) + 1
        column = index - (self.text.rfind("\n", 0, index) + 1) + 1
        return InvalidInput(f"{self.what} is not valid JSON ({message} at line {line} column {column})", field="body")

    def value_at(self, index: int) -> Span:
        try:
            value, end = _DECODER.raw_decode(self.text, index)
        except json.JSONDecodeError as exc:
            raise self._fail(exc.msg, exc.pos) from None
        except ValueError as exc:  # NaN / Infinity
            raise self._fail(str(exc), index) from None
        except RecursionError:
            raise InvalidInput(
                f"{self.what} nests too deeply; JSON may nest at most {MAX_JSON_DEPTH} levels", field="body"
            ) from None
        return Span(value, index, end)

    def root(self) -> int:
        """Where the single top-level value starts (after checking nothing but whitespace follows it)."""
        # A body holds payloads up to three levels down (a queued outcome message: its object, its events
        # array, an event); each payload is then held to the limit itself.
        depth = nests_deeper_than(self.raw, MAX_JSON_DEPTH + _WRAPPER_LEVELS)
        if depth is not None:
            raise InvalidInput(
                f"{self.what} nests {depth} levels deep; a payload may nest at most {MAX_JSON_DEPTH} levels "
                f"(documented limit)",
                field="body",
            )
        start = self._skip(0)
        if start == len(self.text):
            raise InvalidInput(f"{self.what} is empty", field="body")
        return start

    def expect_end(self, end: int) -> None:
        after = self._skip(end)
        if after != len(self.text):
            raise self._fail("extra data after the JSON value", after)

    def object_at(self, index: int, where: str) -> tuple[dict[str, Span], int]:
        """The members of the object starting at `index`, each with its span; a repeated name is refused."""
        text = self.text
        if not text.startswith("{", index):
            raise InvalidInput(f"{where} must be a JSON object", field=where)
        members: dict[str, Span] = {}
        index = self._skip(index + 1)
        if text.startswith("}", index):
            return members, index + 1
        while True:
            if not text.startswith('"', index):
                raise self._fail("expecting a member name in double quotes", index)
            name = self.value_at(index)
            index = self._skip(name.end)
            if not text.startswith(":", index):
                raise self._fail("expecting ':'", index)
            span = self.value_at(self._skip(index + 1))
            if name.value in members:
                raise InvalidInput(f"{where} has the member {name.value!r} twice", field=f"{where}.{name.value}")
            members[name.value] = span
            index = self._skip(span.end)
            if text.startswith(",", index):
                index = self._skip(index + 1)
            elif text.startswith("}", index):
                return members, index + 1
            else:
                raise self._fail("expecting ',' or '}'", index)

    def array_at(self, index: int, walk: Callable[[int, int], int]) -> int:
        """Walk the array at `index`: `walk(item_index, item_start)` returns each item's end; the array's end."""
        text = self.text
        index = self._skip(index + 1)
        if text.startswith("]", index):
            return index + 1
        position = 0
        while True:
            index = self._skip(walk(position, index))
            position += 1
            if text.startswith(",", index):
                index = self._skip(index + 1)
            elif text.startswith("]", index):
                return index + 1
            else:
                raise self._fail("expecting ',' or ']'", index)


def _at(problem: InvalidInput, where: str | None) -> InvalidInput:
    """`problem` located under `where` (`events[2]`): its field and message name the item."""
    if where:
        problem.field = f"{where}.{problem.field}" if problem.field else where
        problem.args = (f"{where}: {problem.args[0]}" if problem.args else where,)
    return problem


def _validated(model: type[_M], data: Mapping[str, Any], where: str | None) -> _M:
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise _at(invalid_input_from(exc), where) from None


def _values(members: Mapping[str, Span], opaque: str | None = None) -> dict[str, Any]:
    """Member values for validation; the `opaque` member (a payload, kept as text) only needs to be there."""
    return {name: None if name == opaque else span.value for name, span in members.items()}


def _media_type(content_type: str | None) -> str:
    """The media type of a Content-Type value, lowered; a charset other than UTF-8 is refused."""
    if not content_type:
        return ""
    media, *params = (part.strip() for part in content_type.split(";"))
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise InvalidInput(
                f"JSON bodies are UTF-8; charset {value.strip()!r} is not accepted", field="Content-Type"
            )
    return media.lower()


# ---------------------------------------------------------------------------------------------------
# Messages: WorkflowMessageEnvelope


class _WireModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)


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


def parse_envelope(raw_body: bytes) -> WorkflowMessageEnvelope:
    """The envelope in `raw_body`, checked for the rules ingest relies on."""
    document = _Document(raw_body, "the message")
    start = document.root()
    members, end = document.object_at(start, "message")
    document.expect_end(end)
    envelope = _validated(WorkflowMessageEnvelope, _values(members), None)
    if envelope.is_trigger == envelope.is_start_workflow_request:
        raise InvalidInput("exactly one of isTrigger and isStartWorkflowRequest must be true", field="isTrigger")
    if envelope.is_trigger and envelope.trigger is None:
        raise InvalidInput("a trigger envelope (isTrigger) needs its 'trigger'", field="trigger")
    if envelope.is_start_workflow_request and envelope.start_workflow_instance_request is None:
        raise InvalidInput(
            "a start-request envelope (isStartWorkflowRequest) needs its 'startWorkflowInstanceRequest'",
            field="startWorkflowInstanceRequest",
        )
    return envelope


def _operation_id(envelope: WorkflowMessageEnvelope) -> UUID:
    try:
        return UUID(envelope.operation_id)
    except ValueError:
        raise InvalidInput(f"operationId {envelope.operation_id!r} is not a UUID", field="operationId") from None


def _instance_of(envelope: WorkflowMessageEnvelope) -> str | None:
    start = envelope.start_workflow_instance_request
    if start is not None and start.workflow_instance_id:
        return validate_instance_id(start.workflow_instance_id, "startWorkflowInstanceRequest.workflowInstanceId")
    # A property or a trigger subject only hints at the instance: one that could not be an instance id
    # leaves the message unlinked rather than refused (the message itself is still worth recording).
    named = envelope.properties.get("WorkflowInstanceId")
    if _could_be_instance_id(named):
        return str(named)
    if envelope.trigger is not None and len(envelope.trigger.subjects) == 1:
        subject = envelope.trigger.subjects[0]
        return subject if _could_be_instance_id(subject) else None
    return None


def _could_be_instance_id(value: object) -> bool:
    try:
        validate_instance_id(value)
    except InvalidInput:
        return False
    return True


def _envelope_event(envelope: WorkflowMessageEnvelope, raw_body: bytes, source: str) -> NewEvent:
    start = envelope.start_workflow_instance_request
    event_id = _operation_id(envelope)
    kind = EventType.TRIGGER_RECEIVED if envelope.is_trigger else EventType.INSTANCE_CREATION_REQUEST_RECEIVED
    return _new_event(
        {
            "event_id": event_id,
            "event_type": kind,
            "payload": raw_body,
            "content_type": JSON_CONTENT_TYPE,
            "workflow_id": start.workflow_id if start is not None else None,
            "workflow_instance_id": _instance_of(envelope),
            "correlation_id": envelope.operation_id,
            "source_system": source,
        },
        None,
        _ENVELOPE_NAMES,
    )


def envelope_to_event(tenant_id: str, raw_body: bytes, source: str) -> tuple[str, NewEvent]:
    """The audit-stream event for a message envelope received for `tenant_id` (the route's or queue's)."""
    canonical = validate_tenant_id(tenant_id)
    envelope = parse_envelope(raw_body)
    if _canonical_or_none(envelope.tenant_id) != canonical:
        raise InvalidInput(
            f"the envelope's tenantId {envelope.tenant_id!r} is not the tenant it was sent to ({canonical})",
            field="tenantId",
        )
    return AUDIT_STREAM_ID, _envelope_event(envelope, raw_body, source)


def _canonical_or_none(tenant_id: str) -> str | None:
    try:
        return validate_tenant_id(tenant_id)
    except InvalidInput:
        return None


@dataclass(frozen=True, slots=True)
class MessageRecorded:
    """What recording one message wrote (or, on a repeat, what the first delivery wrote)."""

    tenant_id: str
    event_id: UUID
    result: AppendResult


def is_json_media_type(content_type: str | None) -> bool:
    """application/json or any */*+json (UTF-8: another charset is refused)."""
    media = _media_type(content_type)
    return media == JSON_CONTENT_TYPE or media.endswith("+json")


def check_message_content_type(content_type: str | None) -> None:
    """Messages are JSON: application/json, Marain's envelope type, or any */*+json."""
    if not is_json_media_type(content_type) and _media_type(content_type) != ENVELOPE_CONTENT_TYPE:
        raise UnsupportedContentType(content_type, MESSAGE_CONTENT_TYPES)


def record_message(store: EventStore, tenant_id: str, raw_body: bytes, source: str) -> MessageRecorded:
    """Record a message sent for `tenant_id`; idempotent on its operationId."""
    tenant = store.tenant(tenant_id)  # InvalidTenantId / UnknownTenant before the body is looked at
    stream_id, event = envelope_to_event(tenant.tenant_id, raw_body, source)
    result = tenant.append(stream_id, [event], StreamState.ANY)
    return MessageRecorded(tenant.tenant_id, event.event_id, result)


def record_queued_message(store: EventStore, raw_body: bytes) -> MessageRecorded:
    """Record a `workflow-messages` queue message: the tenant is the envelope's own `tenantId`."""
    envelope = parse_envelope(raw_body)
    return record_message(store, envelope.tenant_id, raw_body, "queue")


# ---------------------------------------------------------------------------------------------------
# Outcomes: our own event shape, or Marain engine CloudEvents


# What the store refuses in text it keeps in columns, said in the schema (the checks themselves are the
# store's, with their own messages): PostgreSQL text cannot hold NUL; ids hold no control characters.
_NO_NUL: JsonDict = {"pattern": r"^[^\x00]*$"}
_TEXT: JsonDict = {"maxLength": 512, "pattern": r"^[^\x00]*$"}

# `is_json_content_type` as an ECMA pattern (no inline flags there, hence the letter classes).
JSON_MEDIA_TYPE_PATTERN = (
    r"^\s*(?:[^;\x00]*\+[Jj][Ss][Oo][Nn]|[Aa][Pp][Pp][Ll][Ii][Cc][Aa][Tt][Ii][Oo][Nn]/[Jj][Ss][Oo][Nn]"
    r"|[Tt][Ee][Xx][Tt]/[Jj][Ss][Oo][Nn])\s*(?:;[^\x00]*)?$"
)


class OutcomeEvent(BaseModel):
    """Our own outcome shape. `payload` is any JSON value; it is stored as the exact text sent."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    event_id: UUID = Field(alias="eventId")
    event_type: StrictStr = Field(
        alias="eventType",
        description="One of the event types (`EventType`).",
        json_schema_extra={"enum": [t.value for t in EventType]},
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


def cloudevent_event_id(source: str, event_id: str) -> UUID:
    """The event id for a CloudEvent: its `id` if that is a UUID, else a uuid5 of source and id."""
    try:
        return UUID(event_id)
    except ValueError:
        return uuid5(CLOUDEVENT_ID_NAMESPACE, json.dumps([source, event_id], ensure_ascii=False))


@dataclass(frozen=True, slots=True)
class _Item:
    members: dict[str, Span]
    span: Span
    where: str
    """How messages name the item: `event`, or `events[2]` in an array."""
    in_array: bool = False

    @property
    def path(self) -> str | None:
        """The prefix of the fields the client sent: none for a single event (its members are at the root)."""
        return self.where if self.in_array else None

    def field(self, name: str) -> str:
        return f"{self.where}.{name}" if self.in_array else name


def _check_depth(value: bytes, member: str, item: _Item) -> None:
    depth = nests_deeper_than(value, MAX_JSON_DEPTH)
    if depth is not None:
        problem = InvalidInput(
            f"{member} nests {depth} levels deep; a payload may nest at most {MAX_JSON_DEPTH} levels "
            f"(documented limit)",
            field=member,
        )
        raise _at(problem, item.path)


def _native_event(document: _Document, item: _Item, instance_id: str) -> NewEvent:
    native = _validated(OutcomeEvent, _values(item.members, "payload"), item.path)
    try:
        event_type = EventType.parse(native.event_type)
    except InvalidInput as exc:
        exc.field = "eventType"
        raise _at(exc, item.path) from None
    if not is_json_content_type(native.content_type):
        raise InvalidInput(
            f"contentType {native.content_type!r} is not a JSON media type; the payload is JSON text",
            field=item.field("contentType"),
        )
    payload = document.bytes_of(item.members["payload"])
    _check_depth(payload, "payload", item)
    return _new_event(
        {
            "event_id": native.event_id,
            "event_type": event_type,
            "payload": payload,
            "content_type": native.content_type,
            "workflow_id": native.workflow_id,
            "workflow_instance_id": instance_id,
            "user_id": native.user_id,
            "correlation_id": native.correlation_id,
            "causation_id": native.causation_id,
            "source_system": native.source_system,
        },
        item.path,
        _NATIVE_NAMES,
    )


def _cloudevent(document: _Document, item: _Item, tenant_id: str, instance_id: str, whole: bool) -> NewEvent:
    event = _validated(EngineCloudEvent, _values(item.members, "data"), item.path)
    if "data" in item.members:
        _check_depth(document.bytes_of(item.members["data"]), "data", item)
    event_type = CLOUDEVENT_TYPES.get(event.type)
    if event_type is None:
        raise InvalidInput(
            f"CloudEvent type {event.type!r} is not one this store maps; known types: {', '.join(CLOUDEVENT_TYPES)}",
            field=item.field("type"),
        )
    if event.maraintenantid is not None and _canonical_or_none(event.maraintenantid) != tenant_id:
        raise InvalidInput(
            f"the CloudEvent's maraintenantid {event.maraintenantid!r} is not the tenant it was sent to",
            field=item.field("maraintenantid"),
        )
    data_span = item.members.get("data")
    data = data_span.value if data_span is not None and isinstance(data_span.value, dict) else {}
    named = {"subject": event.subject, "data.workflowInstanceId": data.get("workflowInstanceId")}
    for where, value in named.items():
        if value is not None and value != instance_id:
            raise InvalidInput(
                f"the CloudEvent's {where} {value!r} names another instance than {instance_id!r}",
                field=item.field(where),
            )
    workflow_id = data.get("workflowId")
    return _new_event(
        {
            "event_id": cloudevent_event_id(event.source, event.id),
            "event_type": event_type,
            # A single CloudEvent body is kept whole, exactly as received; a batch keeps each item's text.
            "payload": document.raw if whole else document.bytes_of(item.span),
            "content_type": CLOUDEVENT_CONTENT_TYPE,
            "workflow_id": workflow_id if isinstance(workflow_id, str) and workflow_id else None,
            "workflow_instance_id": instance_id,
            "user_id": event.userid,
            "correlation_id": event.correlationid,
            "causation_id": event.causationid,
            "source_system": event.source,
        },
        item.path,
        _CLOUDEVENT_NAMES,
    )


# What the client called each NewEvent field (an error names the member as sent, never our field names).
_NATIVE_NAMES = {
    "event_id": "eventId",
    "event_type": "eventType",
    "payload": "payload",
    "content_type": "contentType",
    "workflow_id": "workflowId",
    "workflow_instance_id": "instanceId",
    "user_id": "userId",
    "correlation_id": "correlationId",
    "causation_id": "causationId",
    "source_system": "sourceSystem",
}
_ENVELOPE_NAMES = {
    "workflow_id": "startWorkflowInstanceRequest.workflowId",
    "workflow_instance_id": "startWorkflowInstanceRequest.workflowInstanceId",
    "correlation_id": "operationId",
}
_CLOUDEVENT_NAMES = {
    "event_id": "id",
    "event_type": "type",
    "payload": "data",
    "content_type": "datacontenttype",
    "workflow_id": "data.workflowId",
    "workflow_instance_id": "subject",
    "user_id": "userid",
    "correlation_id": "correlationid",
    "causation_id": "causationid",
    "source_system": "source",
}


def _new_event(fields: dict[str, Any], path: str | None, names: Mapping[str, str]) -> NewEvent:
    try:
        return NewEvent.model_validate(fields)
    except ValidationError as exc:
        problem = invalid_input_from(exc)
        error = exc.errors()[0]
        if error["loc"]:
            wire = names.get(str(error["loc"][0]), str(error["loc"][0]))
            problem.field = wire
            if not isinstance(error.get("ctx", {}).get("error"), InvalidInput):
                problem.args = (f"{wire}: {error['msg']}",)
        raise _at(problem, path) from None


def _items(document: _Document, start: int, where: str, single: str = "event") -> tuple[list[_Item], int, bool]:
    """The event items at `start` (an object, named `single`, or an array of objects, named `where[i]`),
    their end, and whether it was an array."""
    if not document.text.startswith("[", start):
        members, end = document.object_at(start, single)
        return [_Item(members, Span(None, start, end), single)], end, False
    items: list[_Item] = []

    def walk(position: int, item_start: int) -> int:
        label = f"{where}[{position}]"
        members, item_end = document.object_at(item_start, label)
        items.append(_Item(members, Span(None, item_start, item_end), label, in_array=True))
        return item_end

    end = document.array_at(start, walk)
    if not items:
        raise InvalidInput("an append needs at least one event", field=where)
    return items, end, True


def _to_events(
    document: _Document, items: list[_Item], tenant_id: str, instance_id: str, *, only_cloudevents: bool, whole: bool
) -> list[NewEvent]:
    events = []
    for item in items:
        if "specversion" in item.members:
            events.append(_cloudevent(document, item, tenant_id, instance_id, whole))
        elif only_cloudevents:
            raise InvalidInput(
                f"{item.where} is not a CloudEvent (no 'specversion')", field=item.field("specversion")
            )
        else:
            events.append(_native_event(document, item, instance_id))
    return events


def outcomes_to_events(
    raw_body: bytes, content_type: str | None, *, tenant_id: str, workflow_instance_id: str
) -> list[NewEvent]:
    """The events in an outcome request body for one instance of one tenant, in order.

    `application/json`: one item or an array of items, each our own shape or a CloudEvent;
    `application/cloudevents+json`: one CloudEvent; `application/cloudevents-batch+json`: an array of them.
    """
    canonical = validate_tenant_id(tenant_id)
    validate_instance_id(workflow_instance_id, "instanceId")  # the route's parameter
    media = _media_type(content_type)
    if media not in OUTCOME_CONTENT_TYPES:
        raise UnsupportedContentType(content_type, OUTCOME_CONTENT_TYPES)
    document = _Document(raw_body, "the body")
    start = document.root()
    items, end, is_array = _items(document, start, "events")
    document.expect_end(end)
    if media == CLOUDEVENT_CONTENT_TYPE and is_array:
        raise InvalidInput(
            f"{CLOUDEVENT_CONTENT_TYPE} is one CloudEvent; send an array as {CLOUDEVENT_BATCH_CONTENT_TYPE}"
        )
    if media == CLOUDEVENT_BATCH_CONTENT_TYPE and not is_array:
        raise InvalidInput(f"{CLOUDEVENT_BATCH_CONTENT_TYPE} is a JSON array of CloudEvents", field="body")
    return _to_events(
        document,
        items,
        canonical,
        workflow_instance_id,
        only_cloudevents=media != JSON_CONTENT_TYPE,
        whole=not is_array,
    )


def record_outcomes(
    store: EventStore,
    tenant_id: str,
    workflow_instance_id: str,
    raw_body: bytes,
    content_type: str | None,
    expected_version: ExpectedVersion = StreamState.ANY,
) -> tuple[list[NewEvent], AppendResult]:
    """Append the outcome events in `raw_body` to the instance's stream, atomically."""
    tenant = store.tenant(tenant_id)
    events = outcomes_to_events(
        raw_body, content_type, tenant_id=tenant.tenant_id, workflow_instance_id=workflow_instance_id
    )
    return events, tenant.append(instance_stream_id(workflow_instance_id), events, expected_version)


@dataclass(frozen=True, slots=True)
class OutcomeMessage:
    """A `workflow-outcomes` queue message, parsed."""

    tenant_id: str
    workflow_instance_id: str
    events: list[NewEvent]


def _required_text(value: object, field: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} is missing", field=field)
    return value


def parse_outcome_message(raw_body: bytes) -> OutcomeMessage:
    """A `workflow-outcomes` message: `{"tenantId", "workflowInstanceId", "events": [...]}`, or one engine
    CloudEvent, or an array of them (tenant and instance named by the CloudEvents themselves)."""
    document = _Document(raw_body, "the message")
    start = document.root()
    items, end, is_array = _items(document, start, "message", "message")
    document.expect_end(end)
    head = items[0].members
    if is_array or "specversion" in head:
        first = head.get("data")
        data = first.value if first is not None and isinstance(first.value, dict) else {}
        tenant_span, subject = head.get("maraintenantid"), head.get("subject")
        tenant_id = _required_text(tenant_span.value if tenant_span else None, "maraintenantid", "maraintenantid")
        instance = subject.value if subject is not None else data.get("workflowInstanceId")
        instance_id = _required_text(instance, "subject", "the CloudEvent's subject (the workflow instance id)")
        canonical = validate_tenant_id(tenant_id)
        validate_instance_id(instance_id, "subject" if subject is not None else "data.workflowInstanceId")
        events = _to_events(document, items, canonical, instance_id, only_cloudevents=True, whole=not is_array)
        return OutcomeMessage(canonical, instance_id, events)
    unknown = set(head) - {"tenantId", "workflowInstanceId", "events"}
    if unknown:
        raise InvalidInput(f"unexpected member(s) {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    tenant_id = validate_tenant_id(head["tenantId"].value if "tenantId" in head else None)
    instance_id = _required_text(
        head["workflowInstanceId"].value if "workflowInstanceId" in head else None,
        "workflowInstanceId",
        "workflowInstanceId",
    )
    validate_instance_id(instance_id, "workflowInstanceId")
    if "events" not in head or not document.text.startswith("[", head["events"].start):
        raise InvalidInput("'events' must be an array of events", field="events")
    events_items, _, _ = _items(document, head["events"].start, "events")
    events = _to_events(document, events_items, tenant_id, instance_id, only_cloudevents=False, whole=False)
    return OutcomeMessage(tenant_id, instance_id, events)


def record_queued_outcomes(store: EventStore, raw_body: bytes) -> tuple[OutcomeMessage, AppendResult]:
    """Record a `workflow-outcomes` queue message (any expected version: a queue has no If-Match)."""
    message = parse_outcome_message(raw_body)
    tenant = store.tenant(message.tenant_id)
    return message, tenant.append(instance_stream_id(message.workflow_instance_id), message.events, StreamState.ANY)
