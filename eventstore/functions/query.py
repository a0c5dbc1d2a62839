"""The read API: history, rebuilt state, one event's exact payload, audit search and instances by status.
Lists page with opaque continuation tokens bound to their filters."""

from __future__ import annotations

from urllib.parse import quote

import azure.functions as func

from eventstore import query
from eventstore.errors import InvalidInput
from eventstore.event_types import EventType
from eventstore.http import continuation
from eventstore.http.examples import EXAMPLE_CONTINUATION, EXAMPLE_EVENT_ITEM, EXAMPLE_INSTANCE, EXAMPLE_STATE
from eventstore.http.exchange import (
    event_envelope,
    event_id_param,
    event_item,
    header,
    instance_id_param,
    json_response,
    page,
    parse_query,
    route_param,
)
from eventstore.http.models import (
    AuditPage,
    AuditQuery,
    EventItem,
    EventQuery,
    HistoryPage,
    HistoryQuery,
    InstancesPage,
    InstancesQuery,
    InstanceStateResponse,
    StateQuery,
)
from eventstore.http.routes import Header, Operation, Reply, http_function
from eventstore.models import START, InstanceState
from eventstore.services import services

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]


def _state(state: InstanceState) -> InstanceStateResponse:
    return InstanceStateResponse.model_validate(state.model_dump())


def _token_key() -> bytes:
    return continuation.key_of(services().settings)


GET_HISTORY = Operation(
    name="get_history",
    method="GET",
    route="tenants/{tenantId}/instances/{instanceId}/events",
    auth_level="FUNCTION",
    tag="query",
    summary="A workflow instance's history, in order",
    description="Events in sequence order from fromSequence. JSON payloads kept in the row are inline "
    "(exactly as stored); others are linked by payloadUrl. Pages continue with `continuation`, which is "
    "stable while events are appended.",
    query=HistoryQuery,
    replies=(
        Reply(
            200,
            "One page of the history.",
            HistoryPage,
            example={"workflowInstanceId": EXAMPLE_INSTANCE, "events": [EXAMPLE_EVENT_ITEM], "continuation": None},
        ),
    ),
    errors=(400, 404, 503),
)


@http_function(blueprint, GET_HISTORY)
def get_history(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, HistoryQuery)
    instance_id = instance_id_param(req)
    tenant = services().store.tenant(route_param(req, "tenantId"))
    filters = {"tenant": tenant.tenant_id, "instance": instance_id}
    key = _token_key()
    start = params.from_sequence
    if params.continuation:
        start = continuation.decode_sequence(key, params.continuation, "history", filters)
    history = query.read_history(tenant, instance_id, start, params.limit)
    token = continuation.encode(key, "history", history.next_sequence, filters) if history.next_sequence else None
    marks = tenant.marks(history.events)
    items = (event_item(tenant.tenant_id, event, marks.get(event.event_id)) for event in history.events)
    return json_response(page({"workflowInstanceId": instance_id, "continuation": token}, "events", items))


GET_STATE = Operation(
    name="get_state",
    method="GET",
    route="tenants/{tenantId}/instances/{instanceId}/state",
    auth_level="FUNCTION",
    tag="query",
    summary="A workflow instance's state, rebuilt at any point",
    description="The state folded from the instance's events up to atSequence (default: all of them).",
    query=StateQuery,
    replies=(Reply(200, "The rebuilt state.", InstanceStateResponse, example=EXAMPLE_STATE),),
    errors=(400, 404, 409, 410, 503),
)


@http_function(blueprint, GET_STATE)
def get_state(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, StateQuery)
    instance_id = instance_id_param(req)
    tenant = services().store.tenant(route_param(req, "tenantId"))
    return json_response(_state(query.instance_state(tenant, instance_id, params.at_sequence)))


GET_EVENT = Operation(
    name="get_event",
    method="GET",
    route="tenants/{tenantId}/events/{eventId}",
    auth_level="FUNCTION",
    tag="query",
    summary="One event's exact payload",
    description="The exact bytes received, from the row or Blob storage, their SHA-256 verified, with the "
    "stored content type; ETag is the SHA-256 and X-Event-* headers carry the metadata. With "
    "format=envelope: the metadata and the payload as one JSON document. A payload retention moved to cold "
    "storage is read from there the same way; one in the Archive tier answers 409 payload-archived with "
    "Retry-After, having started to bring its segment back (a later read succeeds).",
    query=EventQuery,
    replies=(
        Reply(
            200,
            "The payload (format=raw, with its stored content type) or the event (format=envelope).",
            EventItem,
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
            example=EXAMPLE_EVENT_ITEM,
        ),
        Reply(304, "Not modified (If-None-Match matched the ETag).", content_type=None),
    ),
    errors=(400, 404, 409, 410, 503),
)


@http_function(blueprint, GET_EVENT)
def get_event(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, EventQuery)
    event_id = event_id_param(req)
    tenant = services().store.tenant(route_param(req, "tenantId"))
    event, payload, mark = query.get_event(tenant, event_id)
    served = mark.redacted_sha256 if mark is not None and mark.redacted_sha256 else event.payload_sha256
    etag = f'"{bytes(served).hex()}"'
    headers = {
        "ETag": etag,
        "X-Event-Id": str(event.event_id),
        "X-Event-Type": event.event_type,
        # Header values are Latin-1 on the wire; instance ids may be any text, so the id is percent-encoded.
        "X-Event-Stream": quote(event.stream_id, safe=":"),
        "X-Event-Sequence": str(event.sequence_number),
        "X-Event-Global-Position": str(event.global_position),
        "X-Event-Recorded-At": event.recorded_at.isoformat(),
        # Not `immutable`: an erasure may still remove or redact the payload, and a cache must not keep serving
        # what was erased. Revalidating with the ETag (a 304) is cheap.
        "Cache-Control": "private, no-cache",
    }
    if params.format == "envelope":
        return json_response(event_envelope(tenant.tenant_id, event, payload, mark), 200, headers)
    if etag in [tag.strip() for tag in (header(req, "If-None-Match") or "").split(",")]:
        return func.HttpResponse(status_code=304, headers=headers)
    return func.HttpResponse(
        payload, status_code=200, headers={"Content-Type": event.content_type, **headers}, mimetype=event.content_type
    )


def _event_type(text: str) -> str:
    try:
        return EventType.parse(text.strip()).value
    except InvalidInput as exc:
        exc.field = "eventType"
        raise


SEARCH_AUDIT = Operation(
    name="search_audit",
    method="GET",
    route="tenants/{tenantId}/audit",
    auth_level="FUNCTION",
    tag="query",
    summary="Search the tenant's events by time, type, workflow and instance",
    description="Every stream of the tenant (the audit stream of received messages and every instance's "
    "outcomes), in commit order. Pages continue with `continuation`; a page never skips an event that "
    "commits late.",
    query=AuditQuery,
    replies=(
        Reply(
            200,
            "One page of matches.",
            AuditPage,
            example={"events": [EXAMPLE_EVENT_ITEM], "continuation": EXAMPLE_CONTINUATION},
        ),
    ),
    errors=(400, 404, 503),
)


@http_function(blueprint, SEARCH_AUDIT)
def search_audit(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, AuditQuery)
    tenant = services().store.tenant(route_param(req, "tenantId"))
    event_types = sorted({_event_type(t) for t in (params.event_type or "").split(",") if t.strip()})
    filters = continuation.audit_filters(
        tenant.tenant_id,
        params.recorded_from,
        params.recorded_to,
        event_types,
        params.workflow_id,
        params.instance_id,
    )
    key = _token_key()
    after = START
    if params.continuation:
        after = continuation.decode_checkpoint(key, params.continuation, "audit", filters)
    found = query.search_audit(
        tenant,
        after,
        params.limit,
        recorded_from=params.recorded_from,
        recorded_to=params.recorded_to,
        event_types=event_types,
        workflow_id=params.workflow_id,
        workflow_instance_id=params.instance_id,
    )
    token = continuation.encode_checkpoint(key, found.next_checkpoint, "audit", filters) if found.more else None
    marks = tenant.marks(found.events)
    items = (event_item(tenant.tenant_id, event, marks.get(event.event_id)) for event in found.events)
    return json_response(page({"continuation": token}, "events", items))


LIST_INSTANCES = Operation(
    name="list_instances",
    method="GET",
    route="tenants/{tenantId}/instances",
    auth_level="FUNCTION",
    tag="query",
    summary="Workflow instances, optionally by status (faulted...), workflow and time of last event",
    description="Instances in id order with their state, served from the instances view (brought up to "
    "date with what was committed before the request first); status=faulted lists faulted instances. "
    "A page may hold fewer than limit instances and still have a continuation.",
    query=InstancesQuery,
    replies=(
        Reply(
            200,
            "One page of instances.",
            InstancesPage,
            example={"instances": [{**EXAMPLE_STATE, "status": "faulted"}], "continuation": None},
        ),
    ),
    errors=(400, 404, 503),
)


@http_function(blueprint, LIST_INSTANCES)
def list_instances(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, InstancesQuery)
    tenant = services().store.tenant(route_param(req, "tenantId"))
    filters = {
        "tenant": tenant.tenant_id,
        "status": params.status,
        "workflow": params.workflow_id,
        "from": params.updated_from.isoformat() if params.updated_from else None,
        "to": params.updated_to.isoformat() if params.updated_to else None,
    }
    key = _token_key()
    after = ""
    if params.continuation:
        after = continuation.decode_instance_id(key, params.continuation, "instances", filters)
    states, cursor = query.list_instances(
        services().store,
        tenant.tenant_id,
        params.status,
        after,
        params.limit,
        workflow_id=params.workflow_id,
        updated_from=params.updated_from,
        updated_to=params.updated_to,
        min_position=params.min_position,
    )
    token = continuation.encode(key, "instances", cursor, filters) if cursor is not None else None
    return json_response(InstancesPage(instances=[_state(s) for s in states], continuation=token))


OPERATIONS = (GET_HISTORY, GET_STATE, GET_EVENT, SEARCH_AUDIT, LIST_INSTANCES)
