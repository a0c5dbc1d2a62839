"""Reading HTTP requests and writing answers: query models, ids, If-Match, body limits, event items.

Everything here raises `eventstore.errors` (or pydantic's ValidationError), which `answers_problems`
turns into problem+json.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote
from uuid import UUID

import azure.functions as func
from pydantic import BaseModel

from eventstore.errors import InvalidInput, PayloadTooLarge
from eventstore.models import ExpectedVersion, RecordedEvent, StreamState, is_json_content_type
from eventstore.payload_json import json_problem
from eventstore.query import inlines_payload
from eventstore.settings import Settings

_Q = TypeVar("_Q", bound=BaseModel)

# Azure adds the function key as `?code=`; it is not one of the API's parameters.
_TRANSPORT_PARAMETERS = frozenset({"code"})
_IF_MATCH = re.compile(r'^\s*(?:"(\d{1,18})"|(\d{1,18})|(\*))\s*$')


def parse_query(req: func.HttpRequest, model: type[_Q]) -> _Q:
    """The query string as `model` (unknown parameters are refused, so a typo is not silently ignored)."""
    params = {k: v for k, v in req.params.items() if k not in _TRANSPORT_PARAMETERS}
    return model.model_validate(params)


def route_param(req: func.HttpRequest, name: str) -> str:
    value = req.route_params.get(name)
    if not value:
        raise InvalidInput(f"the route has no {name}", field=name)
    return str(value)


def event_id_param(req: func.HttpRequest) -> UUID:
    text = route_param(req, "eventId")
    try:
        return UUID(text)
    except ValueError:
        raise InvalidInput(f"event id {text!r} is not a UUID", field="eventId") from None


def header(req: func.HttpRequest, name: str) -> str | None:
    value = req.headers.get(name)
    return str(value) if value is not None else None


def expected_version(req: func.HttpRequest) -> ExpectedVersion:
    """If-Match as an expected stream version: `"5"` (or 5) exactly, `*` an existing stream, absent any."""
    value = header(req, "If-Match")
    if value is None:
        return StreamState.ANY
    match = _IF_MATCH.match(value)
    if match is None:
        raise InvalidInput('If-Match must be one stream version in quotes ("5") or *', field="If-Match")
    if match.group(3):
        return StreamState.STREAM_EXISTS
    return int(match.group(1) or match.group(2))


def body_within_limit(req: func.HttpRequest, settings: Settings) -> bytes:
    body = req.get_body() or b""
    if len(body) > settings.max_payload_size:
        raise PayloadTooLarge(len(body), settings.max_payload_size, field="body")
    return body


def json_response(
    body: BaseModel | Mapping[str, Any] | bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> func.HttpResponse:
    if isinstance(body, BaseModel):
        data = body.model_dump_json(by_alias=True).encode("utf-8")
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return func.HttpResponse(
        data,
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
        mimetype="application/json",
    )


def tenant_path(tenant_id: str) -> str:
    return f"/api/tenants/{quote(tenant_id, safe='')}"


def event_path(tenant_id: str, event_id: UUID) -> str:
    return f"{tenant_path(tenant_id)}/events/{event_id}"


def _metadata(tenant_id: str, event: RecordedEvent) -> dict[str, Any]:
    item: dict[str, Any] = {
        "eventId": str(event.event_id),
        "eventType": event.event_type,
        "streamId": event.stream_id,
        "sequenceNumber": event.sequence_number,
        "globalPosition": event.global_position,
        "workflowId": event.workflow_id,
        "workflowInstanceId": event.workflow_instance_id,
        "userId": event.user_id,
        "correlationId": event.correlation_id,
        "causationId": event.causation_id,
        "sourceSystem": event.source_system,
        "contentType": event.content_type,
        "payloadSha256": bytes(event.payload_sha256).hex(),
        "payloadSize": event.payload_size,
        "recordedAt": event.recorded_at.isoformat(),
    }
    return {k: v for k, v in item.items() if v is not None}


def _with_raw_payload(item: dict[str, Any], payload: bytes) -> bytes:
    # The stored JSON is spliced in as it is: the exact bytes received, never parsed and re-serialised.
    head = json.dumps(item, ensure_ascii=False).encode("utf-8")
    return head[:-1] + b', "payload": ' + payload + b"}"


def event_item(tenant_id: str, event: RecordedEvent) -> bytes:
    """One event as a listing item: JSON payloads kept in the row inline, others linked."""
    item = _metadata(tenant_id, event)
    if inlines_payload(event):
        assert event.payload is not None
        return _with_raw_payload(item, event.payload)
    item["payloadUrl"] = event_path(tenant_id, event.event_id)
    return json.dumps(item, ensure_ascii=False).encode("utf-8")


def event_envelope(tenant_id: str, event: RecordedEvent, payload: bytes) -> bytes:
    """One event with its payload inline: JSON as it is, anything else as base64."""
    item = _metadata(tenant_id, event)
    if inlines_payload(event) or (event.blob_ref is not None and _is_json(event, payload)):
        return _with_raw_payload(item, payload)
    item["payloadBase64"] = base64.b64encode(payload).decode("ascii")
    return json.dumps(item, ensure_ascii=False).encode("utf-8")


def _is_json(event: RecordedEvent, payload: bytes) -> bool:
    return is_json_content_type(event.content_type) and json_problem(payload) is None


def page(members: Mapping[str, Any], list_name: str, items: Iterable[bytes]) -> bytes:
    """A page object: `members`, then `list_name` holding the already-rendered JSON items."""
    head = json.dumps(dict(members), ensure_ascii=False).encode("utf-8")[:-1]
    separator = b", " if members else b""
    return head + separator + json.dumps(list_name).encode() + b": [" + b", ".join(items) + b"]}"
