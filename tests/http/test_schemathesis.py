"""The OpenAPI document and the behaviour agree: schemathesis generates requests from the document the local
host serves (valid ones and deliberately invalid ones) and checks every answer against it: no 5xx, every
answer in the documented shape, every schema-valid request taken and every schema-violating one refused.

Two adjustments, both because of what the local host is, not what the API is: the document's key
requirements are dropped (the local host does not check function keys; Azure does, in front of our code),
and the tenant is one onboarded here (a random one is only ever 404). A continuation token is valid only
with the filters it came from, which a schema cannot say, so a generated request that carries one may be
refused; it must still never be a 5xx or malformed, and the token rules have tests of their own. A bulk
replay whose filter matches no message is answered 422 `nothing-to-replay` (the request is well formed; there
is nothing to do), so that one operation also counts 422 as taking a schema-valid request. The deployment
failure report refuses a range longer than 31 days of hours or 366 days of days with a 400 naming `from` (or
`to`): a rule between two parameters, or one and the clock, that a schema cannot state; so that operation
counts 400 as taking a schema-valid request too.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.request import urlopen

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from eventstore.functions import OPERATIONS
from eventstore.http.openapi import openapi_document
from eventstore.ingest import ENVELOPE_CONTENT_TYPE
from tests.helpers import CONTINUATION_KEY, random_tenant_id
from tests.http.client import HttpApi, native

ONE_TENANT = random_tenant_id()
"""Onboarded once for the whole run, with one instance of a few events."""
INSTANCE = "schemathesis-instance"


def _for_the_local_host(document: dict[str, Any], tenant: str) -> dict[str, Any]:
    """The document without key requirements, its tenant ids pinned to `tenant` wherever a body must name
    the route's tenant, and the instance a CloudEvent names pinned to the route's (rules between a body
    and its path, which a schema cannot state)."""
    document = copy.deepcopy(document)
    document["components"].pop("securitySchemes", None)
    for operations in document["paths"].values():
        for operation in operations.values():
            operation.pop("security", None)
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] == "tenantId":
                    parameter["schema"] = {"type": "string", "enum": [tenant]}
                if parameter["in"] == "path" and parameter["name"] == "instanceId":
                    parameter["schema"] = {"type": "string", "enum": [INSTANCE]}
    schemas = document["components"]["schemas"]
    schemas["WorkflowMessageEnvelope"]["properties"]["tenantId"] = {"type": "string", "enum": [tenant]}
    cloudevent = schemas["EngineCloudEvent"]["properties"]
    cloudevent["maraintenantid"] = {"anyOf": [{"type": "string", "enum": [tenant]}, {"type": "null"}]}
    cloudevent["subject"] = {"anyOf": [{"type": "string", "enum": [INSTANCE]}, {"type": "null"}]}
    cloudevent["data"] = {
        "anyOf": [{"type": "object", "properties": {"workflowInstanceId": {"enum": [INSTANCE]}}}, {"type": "null"}]
    }
    return document


@schemathesis.serializer(ENVELOPE_CONTENT_TYPE)
def _envelope_as_json(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    # Marain's envelope media type is JSON text (schemathesis only knows */json and */*+json as JSON).
    return json.dumps(value).encode()


CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    unsupported_method,
    allow_header_conformance,
)
"""Every check but the key checks (see the module's note)."""

SERVED = openapi_document(OPERATIONS, CONTINUATION_KEY.encode())
"""The document the local host serves (the same key signs its example token; checked below)."""
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
"""schemathesis's own list of answers that take a schema-valid request (5xx is another check's failure)."""
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-method": "POST",
                "include-path": "/tenants/{tenantId}/replays",
                "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "422"]}},
            },
            {
                "include-method": "GET",
                "include-path": "/metrics/failures",
                "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "400"]}},
            },
        ]
    }
)
schema = schemathesis.openapi.from_dict(_for_the_local_host(SERVED, ONE_TENANT), config=CONFIG)


@pytest.fixture(scope="module")
def one_tenant(api_url: str) -> str:
    api = HttpApi(api_url)
    assert api.request("PUT", f"tenants/{ONE_TENANT}").status == 201
    path = f"tenants/{ONE_TENANT}/instances/{INSTANCE}/events"
    assert api.post(path, b"[" + native() + b"," + native("Error") + b"]").status == 201
    return ONE_TENANT


def test_the_document_tested_is_the_one_served(api_url: str) -> None:
    with urlopen(f"{api_url}/openapi.json", timeout=30) as answer:  # noqa: S310 (our own local host)
        assert json.loads(answer.read()) == json.loads(json.dumps(SERVED))


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_api_does_what_its_document_says(case: Any, api_url: str, one_tenant: str) -> None:
    checks = list(CHECKS)
    if case.query and "continuation" in case.query:
        checks.remove(positive_data_acceptance)
    case.call_and_validate(base_url=api_url, checks=checks, timeout=60)


def test_the_checks_that_matter_are_the_ones_run() -> None:
    # Named explicitly: schemathesis's default set leaves out the two data-acceptance checks.
    assert {c.__name__ for c in CHECKS} >= {"not_a_server_error", "positive_data_acceptance", "negative_data_rejection"}
