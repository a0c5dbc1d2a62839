"""The OpenAPI 3.1 document of a set of declared operations, with the wire models' JSON schemas."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter

from eventstore.http import continuation, models
from eventstore.http.examples import EXAMPLE_CONTINUATION, EXAMPLE_TENANT
from eventstore.http.problems import PROBLEM_CONTENT_TYPE
from eventstore.http.routes import PATH_PARAMETERS, Operation, Reply
from eventstore.models import Checkpoint

_REF_TEMPLATE = "#/components/schemas/{model}"
_STATUS_TEXT = {
    400: "Bad request: invalid ids, JSON, parameters or content.",
    403: "Needs the database owner: this deployment's app has no owner DSN (onboard from the command line).",
    404: "Unknown tenant, instance, event or sequence number.",
    409: "Conflict: the stream's version differs from If-Match (see actualVersion), or an event id is taken.",
    413: "The body or a payload is over the configured limit.",
    410: "The event is stored but its payload is lost from Blob storage (see blobRef); the tenant's health lists it.",
    415: "Unsupported content type (see accepted).",
    422: "Nothing to do: the filter matches no message.",
    503: "The store is unavailable; retry after Retry-After seconds.",
}
_PROBLEM_EXAMPLES: dict[int, dict[str, Any]] = {
    422: {"type": "urn:eventstore:problem:nothing-to-replay", "title": "Nothing to replay", "status": 422,
          "detail": "no message matches the filter; nothing was started", "field": "filter"},
    400: {"type": "urn:eventstore:problem:invalid-input", "title": "Invalid request", "status": 400,
          "detail": "operationId 'x' is not a UUID", "field": "operationId"},
    403: {"type": "urn:eventstore:problem:owner-required", "title": "Needs the database owner", "status": 403,
          "detail": "this needs the owner DSN of database 'default', which this deployment's app does not have: "
                    "run it with the command line (`eventstore migrate`, `eventstore tenant onboard`)"},
    404: {"type": "urn:eventstore:problem:unknown-tenant", "title": "Unknown tenant", "status": 404,
          "detail": "tenant 75b9...4f82 is not onboarded"},
    409: {"type": "urn:eventstore:problem:concurrency-conflict", "title": "Concurrency conflict", "status": 409,
          "detail": "stream 'instance:x' is at version 3, expected version 2", "actualVersion": 3},
    413: {"type": "urn:eventstore:problem:payload-too-large", "title": "Content Too Large", "status": 413,
          "detail": "payload is 70000000 bytes, over the limit", "size": 70000000, "limit": 67108864},
    410: {"type": "urn:eventstore:problem:payload-missing", "title": "Payload missing", "status": 410,
          "detail": "the payload of event 5f0c...9d1e is missing from Blob storage: 3d3b...d110/9f86...0a08 "
                    "was not found",
          "blobRef": "3d3b2a3adfd4f8d23a789ed6eaa1f317546d3110/"
                     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
          "eventId": "5f0c2b4e-6a51-4d8e-9f3a-2c1b7d6e9d1e"},
    415: {"type": "urn:eventstore:problem:unsupported-content-type", "title": "Unsupported Media Type",
          "status": 415, "detail": "'text/plain' is not accepted here", "accepted": ["application/json"]},
    503: {"type": "urn:eventstore:problem:store-unavailable", "title": "Service Unavailable", "status": 503,
          "detail": "the store is unavailable; retry later"},
}  # fmt: skip


class _Schemas:
    """Collects component schemas from pydantic types; each type's schema refers to components by name."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, shape: Any) -> dict[str, Any]:
        schema = TypeAdapter(shape).json_schema(ref_template=_REF_TEMPLATE, mode="validation")
        for name, definition in schema.pop("$defs", {}).items():
            self.components.setdefault(name, definition)
        title = schema.get("title")
        if isinstance(shape, type) and title == shape.__name__ and schema.get("type") == "object":
            self.components.setdefault(title, schema)
            return {"$ref": _REF_TEMPLATE.format(model=title)}
        return schema


def _query_parameters(op: Operation, schemas: _Schemas) -> list[dict[str, Any]]:
    if op.query is None:
        return []
    schema = op.query.model_json_schema(ref_template=_REF_TEMPLATE)
    for name, definition in schema.pop("$defs", {}).items():
        schemas.components.setdefault(name, definition)
    required = set(schema.get("required", []))
    parameters = []
    for name, definition in schema["properties"].items():
        prop = dict(definition)
        description = prop.pop("description", None)
        prop.pop("title", None)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _reply(reply: Reply, schemas: _Schemas) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": reply.description}
    if reply.headers:
        answer["headers"] = {h.name: {"description": h.description, "schema": h.schema} for h in reply.headers}
    content: dict[str, Any] = {}
    if reply.model is not None:
        media: dict[str, Any] = {"schema": schemas.of(reply.model)}
        if reply.example is not None:
            media["example"] = reply.example
        content[reply.content_type or "application/json"] = media
        if reply.content_type is None:
            # A stored payload is answered in its own content type, and a JSON payload is any JSON: the
            # document must not promise the envelope's shape for it.
            exact = {"description": "The exact payload, with its stored content type."}
            media["schema"] = {"anyOf": [media["schema"], exact]}
            content["*/*"] = {"schema": exact}
    if content:
        answer["content"] = content
    return answer


def _operation(op: Operation, schemas: _Schemas) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, **PATH_PARAMETERS[name]} for name in op.path_parameters
    ]
    parameters += _query_parameters(op, schemas)
    parameters += [
        {"name": h.name, "in": "header", "required": False, "description": h.description, "schema": h.schema}
        for h in op.headers
    ]
    document: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "description": op.description,
        "tags": [op.tag],
        "security": {"FUNCTION": [{"functionKey": []}], "ADMIN": [{"adminKey": []}], "ANONYMOUS": []}[op.auth_level],
        "responses": {str(reply.status): _reply(reply, schemas) for reply in op.replies},
    }
    if parameters:
        document["parameters"] = parameters
    if op.body is not None:
        body: dict[str, Any] = {
            "description": op.body.description,
            "required": op.body.required,
            "content": {media: {"schema": schemas.of(shape)} for media, shape in op.body.content.items()},
        }
        if op.body.example is not None:
            for media in body["content"].values():
                media["example"] = op.body.example
        document["requestBody"] = body
    problem = schemas.of(models.Problem)
    for status in op.errors:
        document["responses"][str(status)] = {
            "description": _STATUS_TEXT[status],
            "content": {PROBLEM_CONTENT_TYPE: {"schema": problem, "example": _PROBLEM_EXAMPLES[status]}},
            **({"headers": {"Retry-After": {"schema": {"type": "integer"}}}} if status == 503 else {}),
        }
    return document


def _with_signed_examples(value: Any, token: str) -> Any:
    if value == EXAMPLE_CONTINUATION:
        return token
    if isinstance(value, dict):
        return {k: _with_signed_examples(v, token) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_signed_examples(v, token) for v in value]
    return value


def openapi_document(operations: Sequence[Operation], key: bytes | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `operations` (paths relative to the `/api` server); with the deployment's
    token `key`, its example continuation is one the API takes (for the example tenant's unfiltered audit)."""
    document = _document(operations)
    if key is None:
        return document
    filters = continuation.audit_filters(EXAMPLE_TENANT, None, None, [], None, None)
    token = continuation.encode_checkpoint(key, Checkpoint(742, 17), "audit", filters)
    signed: dict[str, Any] = _with_signed_examples(document, token)
    return signed


def _document(operations: Sequence[Operation]) -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault("/" + op.route, {})[op.method.lower()] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "eventstore",
            "version": "1",
            "description": "Audit log, history and change feed for workflow engines (Marain.Workflow shaped). "
            "Errors are RFC 9457 problem+json. A tenant's data is reachable only under its own route.",
        },
        "servers": [{"url": "/api"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key",
                                "description": "A function key (or `?code=`); auth level FUNCTION."},
                "adminKey": {"type": "apiKey", "in": "header", "name": "x-functions-key",
                             "description": "The host's master key; auth level ADMIN."},
            },
        },
    }  # fmt: skip


def openapi_bytes(operations: Sequence[Operation], key: bytes | None = None) -> bytes:
    """`openapi_document` as served."""
    return json.dumps(openapi_document(operations, key), ensure_ascii=False, indent=1).encode("utf-8")
