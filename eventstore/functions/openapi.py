"""The API's description of itself: the OpenAPI document of every function's declared operation, served
anonymously, its example continuation signed with the deployment's key."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import azure.functions as func

from eventstore.http import continuation
from eventstore.http.exchange import json_response
from eventstore.http.openapi import openapi_bytes
from eventstore.http.routes import Operation, Reply, http_function
from eventstore.services import services

GET_OPENAPI = Operation(
    name="get_openapi",
    method="GET",
    route="openapi.json",
    auth_level="ANONYMOUS",
    tag="meta",
    summary="This document",
    description="The OpenAPI 3.1 description of this API.",
    replies=(Reply(200, "The OpenAPI document.", dict[str, Any], example={"openapi": "3.1.0"}),),
)
OPERATIONS = (GET_OPENAPI,)


def openapi_blueprint(operations: Sequence[Operation]) -> func.Blueprint:
    """The blueprint serving the document of `operations`: every module's, this one's included, which
    only the package that collects them knows (so they are passed in rather than imported)."""
    blueprint = func.Blueprint()  # type: ignore[no-untyped-call]
    documented = tuple(operations)

    @cache
    def document(key: bytes) -> bytes:
        return openapi_bytes(documented, key)

    @http_function(blueprint, GET_OPENAPI)
    def get_openapi(req: func.HttpRequest) -> func.HttpResponse:
        key = continuation.key_of(services().settings)
        return json_response(document(key), 200, {"Cache-Control": "public, max-age=300"})

    return blueprint
