"""Outcomes: what happened in a workflow instance, appended to the instance's stream.

A body is one event or a batch (a JSON array, appended atomically). Each item is either
(a) our own shape (`OutcomeEvent`) whose `payload` is any JSON value, stored as the exact text the client
    wrote (never re-serialised), or
(b) a Marain engine CloudEvent (`specversion` present; `EngineCloudEvent`), stored as its exact bytes with
    content type `application/cloudevents+json`. Its `id` is the event id when it is a UUID, otherwise
    `uuid5(CLOUDEVENT_ID_NAMESPACE, json.dumps([source, id]))` (CloudEvents identify an event by source +
    id). Optional extension attributes `userid`, `correlationid` and `causationid` fill the matching
    metadata; `source` becomes the source system.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from uuid import NAMESPACE_URL, UUID, uuid5

from eventstore.errors import InvalidInput
from eventstore.event_types import RECORDED_BY_THE_STORE, EventType
from eventstore.ingest.content_types import (
    CLOUDEVENT_BATCH_CONTENT_TYPE,
    CLOUDEVENT_CONTENT_TYPE,
    outcome_media_type,
)
from eventstore.ingest.json_spans import JsonDocument, Span, member_values
from eventstore.ingest.recorded import Recorded
from eventstore.ingest.validation import located, names_tenant, new_event, validated
from eventstore.ingest.wire import CLOUDEVENT_TYPES, EngineCloudEvent, OutcomeEvent
from eventstore.models import JSON_CONTENT_TYPE, ExpectedVersion, NewEvent, StreamState, is_json_content_type
from eventstore.payload_json import MAX_JSON_DEPTH, nests_deeper_than
from eventstore.store import EventStore, instance_stream_id, validate_instance_id
from eventstore.tenancy import validate_tenant_id

CLOUDEVENT_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:eventstore:cloudevent-id")
"""Namespace of the uuid5 that stands in for a CloudEvent `id` that is not a UUID."""


def cloudevent_event_id(source: str, event_id: str) -> UUID:
    """The event id for a CloudEvent: its `id` if that is a UUID, else a uuid5 of source and id."""
    try:
        return UUID(event_id)
    except ValueError:
        return uuid5(CLOUDEVENT_ID_NAMESPACE, json.dumps([source, event_id], ensure_ascii=False))


@dataclass(frozen=True, slots=True)
class EventItem:
    """One event of a body: its members, each with its exact span."""

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


def event_items(
    document: JsonDocument, start: int, where: str, single: str = "event"
) -> tuple[list[EventItem], int, bool]:
    """The event items at `start` (an object, named `single`, or an array of objects, named `where[i]`),
    their end, and whether it was an array."""
    if not document.text.startswith("[", start):
        members, end = document.object_at(start, single)
        return [EventItem(members, Span(None, start, end), single)], end, False
    items: list[EventItem] = []

    def walk(position: int, item_start: int) -> int:
        label = f"{where}[{position}]"
        members, item_end = document.object_at(item_start, label)
        items.append(EventItem(members, Span(None, item_start, item_end), label, in_array=True))
        return item_end

    end = document.array_at(start, walk)
    if not items:
        raise InvalidInput("an append needs at least one event", field=where)
    return items, end, True


def _check_depth(value: bytes, member: str, item: EventItem) -> None:
    depth = nests_deeper_than(value, MAX_JSON_DEPTH)
    if depth is not None:
        problem = InvalidInput(
            f"{member} nests {depth} levels deep; a payload may nest at most {MAX_JSON_DEPTH} levels "
            f"(documented limit)",
            field=member,
        )
        raise located(problem, item.path)


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


def _native_event(document: JsonDocument, item: EventItem, instance_id: str) -> NewEvent:
    native = validated(OutcomeEvent, member_values(item.members, "payload"), item.path)
    try:
        event_type = EventType.parse(native.event_type)
        if event_type in RECORDED_BY_THE_STORE:
            raise InvalidInput(
                f"eventType {event_type.value} is recorded by the store itself (replays), never sent to it"
            )
    except InvalidInput as exc:
        exc.field = "eventType"
        raise located(exc, item.path) from None
    if not is_json_content_type(native.content_type):
        raise InvalidInput(
            f"contentType {native.content_type!r} is not a JSON media type; the payload is JSON text",
            field=item.field("contentType"),
        )
    payload = document.bytes_of(item.members["payload"])
    _check_depth(payload, "payload", item)
    return new_event(
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


def _cloudevent(document: JsonDocument, item: EventItem, tenant_id: str, instance_id: str, whole: bool) -> NewEvent:
    event = validated(EngineCloudEvent, member_values(item.members, "data"), item.path)
    if "data" in item.members:
        _check_depth(document.bytes_of(item.members["data"]), "data", item)
    event_type = CLOUDEVENT_TYPES.get(event.type)
    if event_type is None:
        raise InvalidInput(
            f"CloudEvent type {event.type!r} is not one this store maps; known types: {', '.join(CLOUDEVENT_TYPES)}",
            field=item.field("type"),
        )
    if event.maraintenantid is not None and not names_tenant(event.maraintenantid, tenant_id):
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
    return new_event(
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


def to_events(
    document: JsonDocument,
    items: list[EventItem],
    tenant_id: str,
    instance_id: str,
    *,
    only_cloudevents: bool,
    whole: bool,
) -> list[NewEvent]:
    """The events of `items` for one instance of one tenant (`tenant_id` canonical), in order."""
    events = []
    for item in items:
        if "specversion" in item.members:
            events.append(_cloudevent(document, item, tenant_id, instance_id, whole))
        elif only_cloudevents:
            raise InvalidInput(f"{item.where} is not a CloudEvent (no 'specversion')", field=item.field("specversion"))
        else:
            events.append(_native_event(document, item, instance_id))
    return events


def _outcome_events(
    raw_body: bytes, content_type: str | None, tenant_id: str, workflow_instance_id: str
) -> list[NewEvent]:
    """`outcomes_to_events` for a tenant id already validated (canonical)."""
    validate_instance_id(workflow_instance_id, "instanceId")  # the route's parameter
    media = outcome_media_type(content_type)
    document = JsonDocument(raw_body, "the body")
    start = document.root()
    items, end, is_array = event_items(document, start, "events")
    document.expect_end(end)
    if media == CLOUDEVENT_CONTENT_TYPE and is_array:
        raise InvalidInput(
            f"{CLOUDEVENT_CONTENT_TYPE} is one CloudEvent; send an array as {CLOUDEVENT_BATCH_CONTENT_TYPE}"
        )
    if media == CLOUDEVENT_BATCH_CONTENT_TYPE and not is_array:
        raise InvalidInput(f"{CLOUDEVENT_BATCH_CONTENT_TYPE} is a JSON array of CloudEvents", field="body")
    return to_events(
        document,
        items,
        tenant_id,
        workflow_instance_id,
        only_cloudevents=media != JSON_CONTENT_TYPE,
        whole=not is_array,
    )


def outcomes_to_events(
    raw_body: bytes, content_type: str | None, *, tenant_id: str, workflow_instance_id: str
) -> list[NewEvent]:
    """The events in an outcome request body for one instance of one tenant, in order.

    `application/json`: one item or an array of items, each our own shape or a CloudEvent;
    `application/cloudevents+json`: one CloudEvent; `application/cloudevents-batch+json`: an array of them.
    """
    return _outcome_events(raw_body, content_type, validate_tenant_id(tenant_id), workflow_instance_id)


def record_outcomes(
    store: EventStore,
    tenant_id: str,
    workflow_instance_id: str,
    raw_body: bytes,
    content_type: str | None,
    expected_version: ExpectedVersion = StreamState.ANY,
) -> Recorded:
    """Append the outcome events in `raw_body` to the instance's stream, atomically."""
    tenant = store.tenant(tenant_id)  # InvalidTenantId / UnknownTenant before the body is looked at
    events = _outcome_events(raw_body, content_type, tenant.tenant_id, workflow_instance_id)
    stream_id = instance_stream_id(workflow_instance_id)
    result = tenant.append(stream_id, events, expected_version)
    return Recorded(tenant.tenant_id, stream_id, workflow_instance_id, events, result)
