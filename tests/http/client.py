"""The HTTP client the API tests share: requests to `/api/...` over real HTTP to the local Functions host,
and builders of the bodies they send."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlencode, urlsplit
from uuid import uuid4

import azure.functions as func
import pytest

from eventstore import EventStore
from eventstore_local.samples import LITWARE_TENANT_ID, load, sample_bytes


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()


class Api:
    """Sends requests to `/api/...` paths."""

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Response:
        raise NotImplementedError

    def get(self, path: str, **params: str) -> Response:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: bytes, content_type: str = "application/json", **headers: str) -> Response:
        return self.request("POST", path, body=body, headers={"Content-Type": content_type, **headers})


class HttpApi(Api):
    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.prefix = parts.path.rstrip("/")

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Response:
        target = f"{self.prefix}/{path}" + (f"?{urlencode(params)}" if params else "")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            conn.request(method, target, body=body or None, headers=dict(headers or {}))
            answer = conn.getresponse()
            return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read())
        finally:
            conn.close()


@cache
def registered_functions() -> tuple[func.Function, ...]:
    """The app's functions (`get_functions()` may be called once per app object)."""
    from function_app import app

    return tuple(app.get_functions())


def http_bindings() -> list[tuple[str, str, str, Callable[..., Any]]]:
    """(route, method, auth level, user function) of each HTTP function."""
    found = []
    for function in registered_functions():
        trigger = function.get_bindings_dict()["bindings"][0]
        if trigger["type"] == "httpTrigger":
            for method in trigger["methods"]:
                found.append(
                    (trigger["route"], str(method.value), str(trigger["authLevel"].name), function.get_user_function())
                )
    return found


def serve_api(request: pytest.FixtureRequest, database_url: str) -> Iterator[Api]:
    """The API under test: function_app.py behind the local host, over real HTTP."""
    yield HttpApi(request.getfixturevalue("api_url"))


def assert_problem(answer: Response, status: int, **members: Any) -> dict[str, Any]:
    assert answer.status == status, answer.body
    assert answer.content_type == "application/problem+json"
    problem: dict[str, Any] = answer.json()
    assert problem["status"] == status and problem["type"].startswith("urn:eventstore:problem:")
    assert isinstance(problem["title"], str) and isinstance(problem["detail"], str)
    for name, value in members.items():
        assert problem.get(name) == value, problem
    return problem


def envelope(tenant: str, name: str = "envelope-trigger.json", **changes: Any) -> bytes:
    """A sample envelope sent for `tenant`, with a fresh operationId unless one is given."""
    document = json.loads(sample_bytes(name).replace(LITWARE_TENANT_ID.encode(), tenant.encode()))
    document.update({"operationId": str(uuid4()), **changes})
    return json.dumps(document, indent=2).encode()


def cloudevent(tenant: str, index: int = 0, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = load("engine-cloudevents.json")[index]
    event.update(maraintenantid=tenant, id=str(uuid4()), **changes)
    return event


def native(event_type: str = "StepCompleted", payload: bytes = b'{"n": 1}', **members: str) -> bytes:
    head = json.dumps({"eventId": str(uuid4()), "eventType": event_type, **members})
    return head[:-1].encode() + b', "payload": ' + payload + b"}"


def versions(store: EventStore, tenant: str, *streams: str) -> list[int]:
    events = store.tenant(tenant)
    return [events.stream_version(s) for s in streams]
