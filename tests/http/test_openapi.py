"""The OpenAPI document matches the functions: the same operations, and what they answer fits the
documented schemas (examples and live answers, checked with a small JSON Schema validator)."""

from __future__ import annotations

import json
import re
from typing import Any
from uuid import uuid4

import pytest

from eventstore.functions import OPERATIONS
from eventstore.http.examples import EXAMPLE_CONTINUATION, EXAMPLE_TENANT
from eventstore.http.openapi import openapi_document
from eventstore_local.samples import CLAIM_INSTANCE_ID, load, sample_bytes
from tests.helpers import random_tenant_id
from tests.http.client import Api, Response, cloudevent, envelope, http_bindings, native

DOCUMENT = openapi_document(OPERATIONS)


# --- a small JSON Schema (2020-12 subset) validator: the keywords pydantic emits, and no others ---------

_ANNOTATIONS = {"title", "description", "default", "format", "examples"}
_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def errors(value: Any, schema: Any, path: str = "$") -> list[str]:
    """Why `value` does not fit `schema` (empty when it does)."""
    if schema is True or schema == {}:
        return []
    if schema is False:
        return [f"{path}: nothing is allowed here"]
    found: list[str] = []
    unknown = set(schema) - _ANNOTATIONS - {
        "$ref", "type", "properties", "required", "additionalProperties", "items", "anyOf", "oneOf", "allOf",
        "enum", "const", "minimum", "maximum", "minLength", "maxLength", "pattern", "not", "minItems",
    }  # fmt: skip
    assert not unknown, f"the validator does not know {unknown}"
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        found += errors(value, DOCUMENT["components"]["schemas"][name], path)
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, n) for n in names):
            return [*found, f"{path}: {value!r} is not {schema['type']}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        found.append(f"{path}: {value!r} is not {schema['const']!r}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            found.append(f"{path}: length {len(value)} out of range")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            found.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{path}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{path}: {value} > {schema['maximum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        found += [f"{path}: {name} is required" for name in schema.get("required", []) if name not in value]
        for name, item in value.items():
            if name in properties:
                found += errors(item, properties[name], f"{path}.{name}")
            elif "additionalProperties" in schema:
                found += errors(item, schema["additionalProperties"], f"{path}.{name}")
    if "not" in schema and not errors(value, schema["not"], path):
        found.append(f"{path}: {value!r} fits what `not` excludes")
    if isinstance(value, list) and len(value) < schema.get("minItems", 0):
        found.append(f"{path}: fewer than {schema['minItems']} items")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += errors(item, schema["items"], f"{path}[{index}]")
    if "anyOf" in schema and all(errors(value, s, path) for s in schema["anyOf"]):
        found.append(f"{path}: fits none of anyOf")
    if "oneOf" in schema and sum(not errors(value, s, path) for s in schema["oneOf"]) != 1:
        found.append(f"{path}: does not fit exactly one of oneOf")
    for part in schema.get("allOf", []):
        found += errors(value, part, path)
    return found


def test_the_validator_rejects_what_it_should() -> None:
    schema = {"$ref": "#/components/schemas/MessageAccepted"}
    good = {"eventId": "x", "sequenceNumber": 1, "globalPosition": 2, "repeated": False}
    assert errors(good, schema) == []
    assert errors({**good, "sequenceNumber": "1"}, schema)
    assert errors({**good, "extra": 1}, schema)  # the wire models forbid unknown members
    assert errors({k: v for k, v in good.items() if k != "repeated"}, schema)
    assert errors("..", {"type": "string", "not": {"enum": [".", ".."]}}) and not errors("a", {"not": {"enum": [".."]}})
    assert errors([], {"type": "array", "minItems": 1}) and not errors([1], {"type": "array", "minItems": 1})


# --- the document and the functions -------------------------------------------------------------------


def test_every_function_is_documented_and_every_operation_is_a_function() -> None:
    from eventstore.console.routes import ROUTES

    # The console's HTML pages are not API operations: they are the console's own routes (docs/console.md).
    pages = {(r.route, m, "ANONYMOUS") for r in ROUTES for m in r.methods}
    everything = {(route, method, auth) for route, method, auth, _ in http_bindings()}
    assert pages <= everything
    registered = everything - pages
    documented = {(op.route, op.method, op.auth_level) for op in OPERATIONS}
    assert registered == documented
    in_paths = {
        (path.removeprefix("/"), method.upper())
        for path, operations in DOCUMENT["paths"].items()
        for method in operations
    }
    assert in_paths == {(route, method) for route, method, _ in registered}


def test_operations_declare_their_path_parameters_and_security() -> None:
    for path, operations in DOCUMENT["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for method, operation in operations.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (path, method)
            assert operation["operationId"] in {op.name for op in OPERATIONS}
            schemes = {name for requirement in operation["security"] for name in requirement}
            assert schemes <= set(DOCUMENT["components"]["securitySchemes"])
    openapi = DOCUMENT["paths"]["/openapi.json"]["get"]
    assert openapi["security"] == []
    assert DOCUMENT["paths"]["/tenants/{tenantId}"]["put"]["security"] == [{"adminKey": []}]


def _media(operation: dict[str, Any], status: int, content_type: str) -> dict[str, Any]:
    media: dict[str, Any] = operation["responses"][str(status)]["content"][content_type]
    return media


def test_every_example_fits_its_schema() -> None:
    checked = 0
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            sections = [*operation["responses"].values()]
            if "requestBody" in operation:
                sections.append(operation["requestBody"])
            for section in sections:
                for content_type, media in section.get("content", {}).items():
                    if "example" in media:
                        problems = errors(media["example"], media["schema"])
                        assert not problems, (path, method, content_type, problems)
                        checked += 1
    assert checked >= 20


def test_the_samples_fit_the_request_schemas() -> None:
    messages = DOCUMENT["paths"]["/tenants/{tenantId}/messages"]["post"]["requestBody"]["content"]
    for name in ("envelope-trigger.json", "envelope-start-request.json"):
        assert not errors(load(name), messages["application/json"]["schema"])
    outcomes = DOCUMENT["paths"]["/tenants/{tenantId}/instances/{instanceId}/events"]["post"]["requestBody"]["content"]
    cloudevents = load("engine-cloudevents.json")
    assert not errors(cloudevents[0], outcomes["application/cloudevents+json"]["schema"])
    assert not errors(cloudevents, outcomes["application/cloudevents-batch+json"]["schema"])
    native_item = {"eventId": str(uuid4()), "eventType": "UserInput", "payload": {"any": ["json"]}}
    assert not errors([native_item, cloudevents[1]], outcomes["application/json"]["schema"])
    assert errors({"eventId": str(uuid4())}, outcomes["application/json"]["schema"])


# --- live answers fit the document --------------------------------------------------------------------


def _check(answer: Response, path: str, method: str) -> None:
    operation = DOCUMENT["paths"][path][method]
    assert str(answer.status) in operation["responses"], (path, method, answer.status, answer.body)
    documented = operation["responses"][str(answer.status)]
    content = documented.get("content", {})
    if not content:
        assert answer.body == b""
        return
    content_type = answer.content_type
    media = content.get(content_type) or content.get("*/*")
    assert media is not None, (path, method, content_type)
    if (content_type.endswith("json") and "application/json" in content) or content_type.endswith("problem+json"):
        problems = errors(answer.json(), media["schema"])
        assert not problems, (path, method, answer.status, problems)
    for name in documented.get("headers", {}):
        if name in ("Location", "ETag") and answer.status < 300:
            assert name.lower() in answer.headers, (path, method, name)


def test_live_answers_fit_the_documented_responses(api: Api) -> None:
    tenant = random_tenant_id()
    t = "/tenants/{tenantId}"
    _check(api.request("PUT", f"tenants/{tenant}"), t, "put")
    _check(api.request("PUT", f"tenants/{tenant}"), t, "put")
    _check(api.request("PUT", f"tenants/{tenant}", body=b"x", headers={"Content-Type": "text/plain"}), t, "put")
    _check(api.get(f"tenants/{tenant}"), t, "get")
    _check(api.get(f"tenants/{random_tenant_id()}"), t, "get")
    _check(api.get("tenants/nope"), t, "get")

    messages = t + "/messages"
    body = envelope(tenant)
    _check(api.post(f"tenants/{tenant}/messages", body), messages, "post")
    _check(api.post(f"tenants/{tenant}/messages", body), messages, "post")
    _check(api.post(f"tenants/{tenant}/messages", body, "text/plain"), messages, "post")
    _check(api.post(f"tenants/{tenant}/messages", sample_bytes("envelope-trigger.json")), messages, "post")
    _check(api.post(f"tenants/{random_tenant_id()}/messages", body), messages, "post")

    events = t + "/instances/{instanceId}/events"
    instance_path = f"tenants/{tenant}/instances/{CLAIM_INSTANCE_ID}/events"
    created = json.dumps(cloudevent(tenant)).encode()
    _check(api.post(instance_path, created, "application/cloudevents+json"), events, "post")
    _check(api.post(instance_path, b"[" + native() + b"]", **{"If-Match": '"7"'}), events, "post")
    _check(api.post(instance_path, native("Nope")), events, "post")
    _check(api.post(instance_path, native(), **{"If-Match": '"1"'}), events, "post")
    _check(api.get(instance_path, limit="1"), events, "get")
    _check(api.get(instance_path, limit="0"), events, "get")
    _check(api.get(f"tenants/{tenant}/instances/nobody/events"), events, "get")

    state = t + "/instances/{instanceId}/state"
    _check(api.get(f"tenants/{tenant}/instances/{CLAIM_INSTANCE_ID}/state"), state, "get")
    _check(api.get(f"tenants/{tenant}/instances/{CLAIM_INSTANCE_ID}/state", atSequence="99"), state, "get")
    _check(api.get(f"tenants/{tenant}/instances/nobody/state"), state, "get")

    event = t + "/events/{eventId}"
    event_id = json.loads(created)["id"]
    raw = api.get(f"tenants/{tenant}/events/{event_id}")
    _check(raw, event, "get")
    _check(api.get(f"tenants/{tenant}/events/{event_id}", format="envelope"), event, "get")
    _check(
        api.request("GET", f"tenants/{tenant}/events/{event_id}", headers={"If-None-Match": raw.headers["etag"]}),
        event,
        "get",
    )
    _check(api.get(f"tenants/{tenant}/events/{uuid4()}"), event, "get")
    _check(api.get(f"tenants/{tenant}/events/nope"), event, "get")

    audit = t + "/audit"
    _check(api.get(f"tenants/{tenant}/audit", limit="1"), audit, "get")
    _check(api.get(f"tenants/{tenant}/audit", eventType="TriggerReceived,InstanceCreated"), audit, "get")
    _check(api.get(f"tenants/{tenant}/audit", eventType="Nope"), audit, "get")

    instances = t + "/instances"
    _check(api.get(f"tenants/{tenant}/instances"), instances, "get")
    _check(api.get(f"tenants/{tenant}/instances", status="faulted"), instances, "get")
    _check(api.get(f"tenants/{tenant}/instances", limit="-1"), instances, "get")


def test_the_document_is_served_anonymously(api: Api) -> None:
    answer = api.get("openapi.json")
    assert answer.status == 200 and answer.content_type == "application/json"
    served = answer.json()
    assert served["openapi"].startswith("3.1")
    audit = "/tenants/{tenantId}/audit"
    example = served["paths"][audit]["get"]["responses"]["200"]["content"]["application/json"]["example"]
    token = example["continuation"]
    assert token != EXAMPLE_CONTINUATION
    example["continuation"] = EXAMPLE_CONTINUATION
    assert served == json.loads(json.dumps(DOCUMENT))  # the same document, its example token signed
    # The document's example token is one the API takes, for the example tenant's audit.
    assert api.request("PUT", f"tenants/{EXAMPLE_TENANT}").status in (200, 201)
    assert api.get(f"tenants/{EXAMPLE_TENANT}/audit", continuation=token).status == 200


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)
def test_each_operation_documents_its_success_and_errors(op: Any) -> None:
    operation = DOCUMENT["paths"]["/" + op.route][op.method.lower()]
    statuses = {int(s) for s in operation["responses"]}
    assert any(200 <= s < 300 for s in statuses)
    for status in op.errors:
        media = operation["responses"][str(status)]["content"]["application/problem+json"]
        assert media["schema"] == {"$ref": "#/components/schemas/Problem"}
