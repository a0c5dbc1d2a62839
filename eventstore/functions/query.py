"""The read API: history, rebuilt state, one event's exact payload, audit search, instances by status,
and the OpenAPI document. Lists page with opaque continuation tokens bound to their filters."""

from __future__ import annotations

from urllib.parse import quote

import azure.functions as func

from eventstore import query
from eventstore.errors import InvalidInput
from eventstore.event_types import EventType
from eventstore.http import continuation
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
    AuditQuery,
    EventQuery,
    HistoryQuery,
    InstancesPage,
    InstancesQuery,
    InstanceStateResponse,
    StateQuery,
)
from eventstore.http.openapi import openapi_bytes
from eventstore.http.routes import http_function
from eventstore.models import START, InstanceState
from eventstore.runtime import get_store

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]


def _state(state: InstanceState) -> InstanceStateResponse:
    return InstanceStateResponse.model_validate(state.model_dump())


def _token_key() -> bytes:
    return continuation.key_of(get_store().settings)


@http_function(blueprint, "get_history")
def get_history(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, HistoryQuery)
    instance_id = instance_id_param(req)
    tenant = get_store().tenant(route_param(req, "tenantId"))
    filters = {"tenant": tenant.tenant_id, "instance": instance_id}
    key = _token_key()
    start = params.from_sequence
    if params.continuation:
        start = continuation.decode_sequence(key, params.continuation, "history", filters)
    history = query.read_history(tenant, instance_id, start, params.limit)
    token = continuation.encode(key, "history", history.next_sequence, filters) if history.next_sequence else None
    items = (event_item(tenant.tenant_id, event) for event in history.events)
    return json_response(page({"workflowInstanceId": instance_id, "continuation": token}, "events", items))


@http_function(blueprint, "get_state")
def get_state(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, StateQuery)
    instance_id = instance_id_param(req)
    tenant = get_store().tenant(route_param(req, "tenantId"))
    return json_response(_state(query.instance_state(tenant, instance_id, params.at_sequence)))


@http_function(blueprint, "get_event")
def get_event(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, EventQuery)
    event_id = event_id_param(req)
    tenant = get_store().tenant(route_param(req, "tenantId"))
    event, payload = query.get_event(tenant, event_id)
    etag = f'"{bytes(event.payload_sha256).hex()}"'
    headers = {
        "ETag": etag,
        "X-Event-Id": str(event.event_id),
        "X-Event-Type": event.event_type,
        # Header values are Latin-1 on the wire; instance ids may be any text, so the id is percent-encoded.
        "X-Event-Stream": quote(event.stream_id, safe=":"),
        "X-Event-Sequence": str(event.sequence_number),
        "X-Event-Global-Position": str(event.global_position),
        "X-Event-Recorded-At": event.recorded_at.isoformat(),
        # Events never change: a cache may keep them as long as it likes.
        "Cache-Control": "private, max-age=31536000, immutable",
    }
    if params.format == "envelope":
        return json_response(event_envelope(tenant.tenant_id, event, payload), 200, headers)
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


@http_function(blueprint, "search_audit")
def search_audit(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, AuditQuery)
    tenant = get_store().tenant(route_param(req, "tenantId"))
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
    items = (event_item(tenant.tenant_id, event) for event in found.events)
    return json_response(page({"continuation": token}, "events", items))


@http_function(blueprint, "list_instances")
def list_instances(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, InstancesQuery)
    tenant = get_store().tenant(route_param(req, "tenantId"))
    filters = {"tenant": tenant.tenant_id, "status": params.status}
    key = _token_key()
    after = ""
    if params.continuation:
        after = continuation.decode_instance_id(key, params.continuation, "instances", filters)
    states, cursor = query.list_instances(tenant, params.status, after, params.limit)
    token = continuation.encode(key, "instances", cursor, filters) if cursor is not None else None
    return json_response(InstancesPage(instances=[_state(s) for s in states], continuation=token))


@http_function(blueprint, "get_openapi")
def get_openapi(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(openapi_bytes(_token_key()), 200, {"Cache-Control": "public, max-age=300"})
