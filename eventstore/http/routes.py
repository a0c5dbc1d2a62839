"""How an HTTP function is declared: its route, method, auth level, inputs and answers (`Operation`).

Each module of `eventstore.functions` declares its operations beside their handlers and registers each
handler through `http_function`, which takes route, method and auth level from the declaration; the
OpenAPI document (`eventstore.http.openapi`) is generated from the same declarations. A test checks that
the registered functions and the document name the same operations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from pydantic import BaseModel

from eventstore.http.problems import Handler, answers_problems
from eventstore.models import JSON_CONTENT_TYPE
from eventstore.store import NO_CONTROL_CHARACTERS
from eventstore.tenancy import TENANT_ID_PATTERN

PATH_PARAMETERS: Mapping[str, dict[str, Any]] = {
    "jobId": {"description": "A replay job's id.", "schema": {"type": "string", "format": "uuid"}},
    "deadLetterId": {
        "description": "A queue dead letter's id (a positive integer).",
        "schema": {"type": "string", "pattern": r"^[1-9][0-9]{0,17}$"},
    },
    "tenantId": {
        "description": "Marain tenant id: lowercase hex, 32 characters per level (at most 8), or a GUID.",
        "schema": {"type": "string", "pattern": TENANT_ID_PATTERN},
    },
    "instanceId": {
        "description": "The workflow instance id: 1-256 characters, no control characters, not `.` or `..`.",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": 256,
            "pattern": NO_CONTROL_CHARACTERS,
            "not": {"enum": [".", ".."]},
        },
    },
    "eventId": {"description": "The event id (a UUID).", "schema": {"type": "string", "format": "uuid"}},
    "executionId": {
        "description": "The execution id the engine reported: 1-256 characters, no control characters.",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": 256,
            "pattern": NO_CONTROL_CHARACTERS,
            "not": {"enum": [".", ".."]},
        },
    },
}


@dataclass(frozen=True)
class Header:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Body:
    """A request body: the content types taken and the shape (a pydantic type) of each."""

    content: Mapping[str, Any]
    description: str
    required: bool = True
    example: Any = None


@dataclass(frozen=True)
class Reply:
    status: int
    description: str
    model: Any = None
    """A pydantic model or type whose JSON schema describes the body; None for no body or raw bytes."""
    content_type: str | None = JSON_CONTENT_TYPE
    headers: tuple[Header, ...] = ()
    example: Any = None


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    route: str
    auth_level: str
    summary: str
    description: str
    tag: str
    replies: tuple[Reply, ...]
    errors: tuple[int, ...] = ()
    query: type[BaseModel] | None = None
    headers: tuple[Header, ...] = ()
    body: Body | None = None

    @property
    def path_parameters(self) -> list[str]:
        return [part[1:-1] for part in self.route.split("/") if part.startswith("{") and part.endswith("}")]


LOCATION = Header("Location", "Where the stored event can be read.")
RETRY_AFTER = Header("Retry-After", "Seconds to wait before asking again.")


def http_function(blueprint: func.Blueprint, op: Operation) -> Callable[[Handler], Handler]:
    """Register `handler` as the HTTP function `op` declares, answering every error as problem+json."""

    def register(handler: Handler) -> Handler:
        wrapped = answers_problems(handler)
        route = blueprint.route(route=op.route, methods=[op.method], auth_level=func.AuthLevel[op.auth_level])
        blueprint.function_name(op.name)(route(wrapped))
        return wrapped

    return register
