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
from urllib.parse import parse_qsl, quote
from uuid import UUID

import annotated_types
import azure.functions as func
from pydantic import BaseModel, ValidationError

from eventstore.errors import InvalidInput, PayloadTooLarge, UnsupportedContentType
from eventstore.http.models import PATTERN_MEANINGS
from eventstore.http.replay_models import PRINCIPAL
from eventstore.ingest import is_json_media_type
from eventstore.models import (
    JSON_CONTENT_TYPE,
    ErasureMark,
    ExpectedVersion,
    RecordedEvent,
    StreamState,
    is_json_content_type,
)
from eventstore.payload_json import common_parsers_refuse, json_problem
from eventstore.query import inlines_payload
from eventstore.settings import Settings
from eventstore.store import validate_instance_id

_Q = TypeVar("_Q", bound=BaseModel)
_M = TypeVar("_M", bound=BaseModel)

# Azure adds the function key as `?code=`; it is not one of the API's parameters.
_TRANSPORT_PARAMETERS = frozenset({"code"})
_IF_MATCH = re.compile(r'^\s*(?:"(\d{1,18})"|(\d{1,18})|(\*))\s*$')


def parse_query(req: func.HttpRequest, model: type[_Q]) -> _Q:
    """The query string as `model`. Unknown parameters are refused, so a typo is not silently ignored, and
    so is a parameter given twice: which of the two values counts would be a guess."""
    seen: set[str] = set()
    # The query is cut from the URL by hand: urlsplit also parses the host, and a host the client wrote
    # oddly must not turn into a server error here.
    for name, _ in parse_qsl(req.url.partition("?")[2].partition("#")[0], keep_blank_values=True):
        if name in seen and name not in _TRANSPORT_PARAMETERS:
            raise InvalidInput(f"the query parameter {name} is given more than once; give it once", field=name)
        seen.add(name)
    params = {k: v for k, v in req.params.items() if k not in _TRANSPORT_PARAMETERS}
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise query_problem(model, exc) from None


def query_problem(model: type[BaseModel], exc: ValidationError) -> InvalidInput:
    """The first problem with a query string, named and worded as the client wrote the parameter."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else "query"
    by_alias = {info.alias or field: info for field, info in model.model_fields.items()}
    info = by_alias.get(name)
    kind, ctx, given = error["type"], error.get("ctx", {}), error.get("input")
    if kind == "extra_forbidden" or info is None:
        known = ", ".join(sorted(by_alias))
        return InvalidInput(f"unknown query parameter {name}; this route takes: {known}", field=name)
    low = next((m.ge for m in info.metadata if isinstance(m, annotated_types.Ge)), None)
    high = next((m.le for m in info.metadata if isinstance(m, annotated_types.Le)), None)
    if kind in ("int_parsing", "int_type", "int_from_float", "greater_than_equal", "less_than_equal"):
        if low is not None and high is not None:
            return InvalidInput(f"{name} must be a whole number between {low} and {high} (got {given!r})", field=name)
        if low is not None:
            return InvalidInput(f"{name} must be a whole number of at least {low} (got {given!r})", field=name)
        return InvalidInput(f"{name} must be a whole number (got {given!r})", field=name)
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in PATTERN_MEANINGS:
        return InvalidInput(f"{name} {PATTERN_MEANINGS[ctx['pattern']]}", field=name)
    if kind == "string_pattern_mismatch":
        return InvalidInput(f"{name} must match {ctx.get('pattern')} (got {given!r})", field=name)
    if kind == "string_too_short":
        return InvalidInput(f"{name} must not be empty; leave it out instead", field=name)
    if kind == "string_too_long":
        return InvalidInput(f"{name} must be at most {ctx.get('max_length')} characters", field=name)
    if kind == "literal_error":
        return InvalidInput(f"{name} must be one of {ctx.get('expected')} (got {given!r})", field=name)
    cause = ctx.get("error")
    reason = str(cause) if isinstance(cause, Exception) else error["msg"]
    return InvalidInput(f"{name}: {reason}", field=name)


def route_param(req: func.HttpRequest, name: str) -> str:
    value = req.route_params.get(name)
    if not value:
        raise InvalidInput(f"the route has no {name}", field=name)
    return str(value)


def instance_id_param(req: func.HttpRequest) -> str:
    """The route's instance id, checked as the store will check it (so the error names `instanceId`)."""
    return validate_instance_id(route_param(req, "instanceId"), "instanceId")


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


PRINCIPAL_HEADER = "X-MS-CLIENT-PRINCIPAL-NAME"
"""Set by App Service Authentication (Entra ID) to the signed-in user: who asked, when it is there."""


def asked_body(req: func.HttpRequest, settings: Settings, model: type[_M]) -> _M:
    """The request's JSON body as `model` (a request someone answers for: replay, redrive), validated with
    the signed-in principal (when there is one) in the context, as who asks."""
    body = body_within_limit(req, settings)
    if body.strip() and not is_json_media_type(header(req, "Content-Type")):
        raise UnsupportedContentType(header(req, "Content-Type"), (JSON_CONTENT_TYPE,))
    principal = header(req, PRINCIPAL_HEADER)
    return model.model_validate_json(body if body.strip() else b"{}", context={PRINCIPAL: principal})


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


def _metadata(tenant_id: str, event: RecordedEvent, mark: ErasureMark | None = None) -> dict[str, Any]:
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
        "erasureId": str(mark.erasure_id) if mark is not None else None,
        "redactedSha256": bytes(mark.redacted_sha256).hex() if mark is not None and mark.redacted_sha256 else None,
    }
    return {k: v for k, v in item.items() if v is not None}


def _with_raw_payload(item: dict[str, Any], payload: bytes) -> bytes:
    # The stored JSON is spliced in as it is: the exact bytes received, never parsed and re-serialised.
    head = json.dumps(item, ensure_ascii=False).encode("utf-8")
    return head[:-1] + b', "payload": ' + payload + b"}"


def _with_payload_text(item: dict[str, Any], payload: bytes) -> bytes | None:
    """`item` with the payload as a JSON string of its exact text, for JSON that common parsers refuse
    (a page must stay readable by every client); None when it is not such a payload."""
    if not common_parsers_refuse(payload):
        return None
    try:
        item["payloadText"] = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return json.dumps(item, ensure_ascii=False).encode("utf-8")


def event_item(tenant_id: str, event: RecordedEvent, mark: ErasureMark | None = None) -> bytes:
    """One event as a listing item: JSON payloads kept in the row inline, others linked."""
    item = _metadata(tenant_id, event, mark)
    if inlines_payload(event):
        assert event.payload is not None
        return _with_payload_text(item, event.payload) or _with_raw_payload(item, event.payload)
    item["payloadUrl"] = event_path(tenant_id, event.event_id)
    return json.dumps(item, ensure_ascii=False).encode("utf-8")


def event_envelope(tenant_id: str, event: RecordedEvent, payload: bytes, mark: ErasureMark | None = None) -> bytes:
    """One event with its payload inline: JSON as it is, anything else as base64."""
    item = _metadata(tenant_id, event, mark)
    if inlines_payload(event) or (event.blob_ref is not None and _is_json(event, payload)):
        return _with_payload_text(item, payload) or _with_raw_payload(item, payload)
    item["payloadBase64"] = base64.b64encode(payload).decode("ascii")
    return json.dumps(item, ensure_ascii=False).encode("utf-8")


def _is_json(event: RecordedEvent, payload: bytes) -> bool:
    return is_json_content_type(event.content_type) and json_problem(payload) is None


def page(members: Mapping[str, Any], list_name: str, items: Iterable[bytes]) -> bytes:
    """A page object: `members`, then `list_name` holding the already-rendered JSON items."""
    head = json.dumps(dict(members), ensure_ascii=False).encode("utf-8")[:-1]
    separator = b", " if members else b""
    return head + separator + json.dumps(list_name).encode() + b": [" + b", ".join(items) + b"]}"
