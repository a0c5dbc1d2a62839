"""The sample engine's messages: Marain trigger envelopes on an Azure Storage queue (`engine-messages`).

A `deal.won` trigger names its deal in `trigger.parameters` and its workflow instance (`deal-<id>`) in
`properties.WorkflowInstanceId` and `trigger.subjects`, so that the recorded message links to the instance
whose stream holds the trace. Bodies travel base64-encoded, as the Functions host's queues do.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from typing import Any
from uuid import uuid4

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient
from pydantic import BaseModel, ConfigDict, Field

from eventstore_local.samples import ENVELOPE_CONTENT_TYPE

ENGINE_QUEUE = "engine-messages"
DEAL_WON = "deal.won"
DEAL_WORKFLOW_ID = "deal-won-workflow"


class Deal(BaseModel):
    """What a `deal.won` trigger carries (its `trigger.parameters`)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    deal_id: str = Field(alias="dealId", min_length=1, max_length=200)
    customer: str
    email: str
    amount: float

    @property
    def instance_id(self) -> str:
        return f"deal-{self.deal_id}"


class _Trigger(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    trigger_name: str = Field(alias="triggerName")
    parameters: dict[str, Any] = Field(default_factory=dict)
    subjects: list[str] = Field(default_factory=list)


class EngineMessage(BaseModel):
    """The members of an envelope the engine reads (the store keeps the whole envelope, byte-exact)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    tenant_id: str = Field(alias="tenantId")
    operation_id: str = Field(alias="operationId")
    trigger: _Trigger
    properties: dict[str, Any] = Field(default_factory=dict)

    @property
    def instance_id(self) -> str | None:
        named = self.properties.get("WorkflowInstanceId")
        if isinstance(named, str) and named:
            return named
        return self.trigger.subjects[0] if self.trigger.subjects else None


def deal_won_envelope(tenant_id: str, deal: Deal, *, operation_id: str | None = None) -> dict[str, Any]:
    """A Marain trigger envelope for a won deal (a fresh operationId unless one is given)."""
    return {
        "contentType": ENVELOPE_CONTENT_TYPE,
        "tenantId": tenant_id,
        "isStartWorkflowRequest": False,
        "isTrigger": True,
        "trigger": {
            "contentType": "application/vnd.marain.workflows.hosted.trigger",
            "id": str(uuid4()),
            "triggerName": DEAL_WON,
            "parameters": deal.model_dump(mode="json", by_alias=True),
            "subjects": [deal.instance_id],
        },
        "operationId": operation_id or str(uuid4()),
        "properties": {"WorkflowInstanceId": deal.instance_id, "WorkflowId": DEAL_WORKFLOW_ID},
    }


def engine_queue(connection_string: str, name: str = ENGINE_QUEUE) -> QueueClient:
    """A client of the engine's queue (created if missing), reading and writing message text as it is (see
    `encode_body`, `decode_body`). The SDK's own retries are off: its backoff would stall polling and stopping;
    the engine's loop retries by itself."""
    client = QueueClient.from_connection_string(connection_string, name, retry_total=0)
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


def encode_body(body: bytes) -> str:
    return base64.b64encode(body).decode("ascii")


def decode_body(text: str) -> bytes:
    """A message's bytes: base64 as the engine (and the Functions host) sends them; text that is not base64 is
    taken as it is, so a message put on the queue by hand is read rather than stuck."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return text.encode("utf-8")


def send_to_engine(connection_string: str, envelope: dict[str, Any], queue: str = ENGINE_QUEUE) -> None:
    """Puts one envelope on the engine's queue."""
    with engine_queue(connection_string, queue) as client:
        client.send_message(encode_body(json.dumps(envelope, indent=2).encode()))
