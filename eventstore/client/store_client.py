"""`EventStoreClient`: the few routes an engine uses, typed: record a received message, append outcome
events to an instance's stream, and read executions, steps and messages back from the views."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote
from uuid import UUID

import requests
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from eventstore.client.errors import RequestRefused
from eventstore.client.models import (
    ExecutionRecord,
    MessageAccepted,
    MessageRecord,
    OutcomesAppended,
    RunComparison,
    StepRecord,
    Trace,
)
from eventstore.client.transport import HttpTransport, RetryPolicy, compact_json


class OutcomeItem(BaseModel):
    """One event in the store's own outcome shape (POST /instances/{id}/events)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    event_id: UUID = Field(alias="eventId")
    event_type: str = Field(alias="eventType")
    payload: JsonValue
    workflow_id: str | None = Field(default=None, alias="workflowId")
    source_system: str | None = Field(default=None, alias="sourceSystem")
    correlation_id: str | None = Field(default=None, alias="correlationId")
    causation_id: str | None = Field(default=None, alias="causationId")


def _segment(value: str) -> str:
    return quote(value, safe="")


class EventStoreClient:
    """The event store's HTTP API at `base_url` (e.g. `http://127.0.0.1:7071/api`), for one engine thread."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.transport = HttpTransport(base_url, api_key=api_key, retry=retry, session=session)

    @property
    def base_url(self) -> str:
        return self.transport.base_url

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> EventStoreClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ------------------------------------------------------------------------------------------

    def onboard_tenant(self, tenant_id: str) -> dict[str, Any]:
        """PUT /tenants/{t}: creates or migrates the tenant (idempotent); its placement."""
        answer: dict[str, Any] = self.transport.put_json(f"tenants/{_segment(tenant_id)}")
        return answer

    def record_message(self, tenant_id: str, envelope: bytes | Mapping[str, Any]) -> MessageAccepted:
        """POST /messages: a Marain WorkflowMessageEnvelope into the tenant's audit stream (idempotent on its
        operationId). Bytes are sent as they are; a mapping is sent as compact JSON."""
        body = envelope if isinstance(envelope, bytes) else compact_json(dict(envelope))
        return MessageAccepted.model_validate(self.transport.post_json(f"tenants/{_segment(tenant_id)}/messages", body))

    def append(self, tenant_id: str, instance_id: str, events: Sequence[OutcomeItem]) -> OutcomesAppended:
        """POST /instances/{id}/events: the events, atomically (one item alone is sent as an object)."""
        items = [e.model_dump(mode="json", by_alias=True, exclude_none=True) for e in events]
        # `payload` is sent even when it is JSON null (exclude_none would have dropped it).
        for item, event in zip(items, events, strict=True):
            item["payload"] = event.payload
        body = compact_json(items[0] if len(items) == 1 else items)
        path = f"tenants/{_segment(tenant_id)}/instances/{_segment(instance_id)}/events"
        return OutcomesAppended.model_validate(self.transport.post_json(path, body))

    # -- reads (from the views: they follow the writes within moments) ----------------------------------

    def execution(self, tenant_id: str, execution_id: str) -> Trace:
        """GET /executions/{id}: the execution with its steps (`RequestRefused` 404 when unknown)."""
        path = f"tenants/{_segment(tenant_id)}/executions/{_segment(execution_id)}"
        return Trace.model_validate(self.transport.get_json(path))

    def executions_of_message(self, tenant_id: str, message_event_id: str | UUID) -> list[ExecutionRecord]:
        """GET /messages/{eventId}/executions: every execution of one received message."""
        path = f"tenants/{_segment(tenant_id)}/messages/{_segment(str(message_event_id))}/executions"
        answer = self.transport.get_json(path)
        return [ExecutionRecord.model_validate(e) for e in answer.get("executions", [])]

    def compare_runs(
        self, tenant_id: str, message_event_id: str | UUID, *, left: str | None = None, right: str | None = None
    ) -> RunComparison:
        """GET /messages/{eventId}/compare: by default the message's latest failed execution beside its latest
        succeeded one (or the workflow's), step by step."""
        path = f"tenants/{_segment(tenant_id)}/messages/{_segment(str(message_event_id))}/compare"
        sides = {name: value for name, value in (("left", left), ("right", right)) if value is not None}
        return RunComparison.model_validate(self.transport.get_json(path, sides or None))

    def message(self, tenant_id: str, message_event_id: str | UUID) -> MessageRecord:
        path = f"tenants/{_segment(tenant_id)}/messages/{_segment(str(message_event_id))}"
        return MessageRecord.model_validate(self.transport.get_json(path))

    def steps(self, tenant_id: str, idempotency_key: str) -> list[StepRecord]:
        """GET /steps?idempotencyKey=: the steps recorded with that key, in any execution."""
        answer = self.transport.get_json(f"tenants/{_segment(tenant_id)}/steps", {"idempotencyKey": idempotency_key})
        return [StepRecord.model_validate(s) for s in answer.get("steps", [])]

    def wait_for_execution(
        self,
        tenant_id: str,
        execution_id: str,
        *,
        until: Callable[[Trace], bool] = lambda trace: trace.finished,
        timeout: float = 10.0,
        interval: float = 0.05,
    ) -> Trace:
        """The execution's trace once `until` holds (default: it finished), polling while the views catch up.
        `TimeoutError` with the last answer when it does not hold within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last: Trace | None = None
        while True:
            try:
                last = self.execution(tenant_id, execution_id)
                if until(last):
                    return last
            except RequestRefused as exc:
                if exc.status != 404:
                    raise
            if time.monotonic() >= deadline:
                seen = f"last seen: {last.status}, {len(last.steps)} step(s)" if last else "never seen"
                raise TimeoutError(f"execution {execution_id} not as awaited within {timeout:g} s ({seen})")
            time.sleep(interval)
            interval = min(interval * 1.5, 0.5)

    def wait_for_executions(
        self,
        tenant_id: str,
        message_event_id: str | UUID,
        *,
        count: int = 1,
        finished: bool = True,
        timeout: float = 10.0,
        interval: float = 0.05,
    ) -> list[ExecutionRecord]:
        """The executions of a message once there are `count` of them (and they finished, by default)."""
        deadline = time.monotonic() + timeout
        found: list[ExecutionRecord] = []
        while True:
            try:
                found = self.executions_of_message(tenant_id, message_event_id)
            except RequestRefused as exc:
                if exc.status != 404:
                    raise
            ready = [e for e in found if e.finished or not finished]
            if len(ready) >= count:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"message {message_event_id}: {len(ready)} of {count} execution(s) within {timeout:g} s"
                )
            time.sleep(interval)
            interval = min(interval * 1.5, 0.5)
