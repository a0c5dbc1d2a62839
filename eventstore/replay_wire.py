"""How a replay travels to the engine's router, and how an engine recognises one (docs/replay.md).

A replay is the stored message's exact bytes plus marks that say it is a replay: the replay id, the
original message's event id, its idempotency key, the tenant, the bulk job it belongs to (if any) and
the steps already completed for it. The marks travel beside the bytes, never inside them:

- **Storage queue.** Queue messages carry no headers, so the message is a small JSON document with the
  marks under `eventstoreReplay` and the stored bytes base64-encoded under `body` (the queue text itself
  base64-encoded, as the Functions host reads and writes queues). `parse_queue_message` gives an engine
  either the replay's marks and the original bytes, or (for any other message) None and the bytes as
  they came.
- **HTTP.** The body is the stored bytes with their stored content type; the marks are `Eventstore-*`
  headers (`http_headers`, `marks_from_headers`), and the router's secret a header of its own.

Both sides use this one module, so the two cannot drift apart.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError

REPLAY_MEMBER = "eventstoreReplay"
"""The member of a queue message that marks it as a replay."""

HEADER_PREFIX = "Eventstore-"
REPLAY_ID_HEADER = "Eventstore-Replay-Id"
ORIGINAL_EVENT_HEADER = "Eventstore-Original-Event-Id"
IDEMPOTENCY_KEY_HEADER = "Eventstore-Idempotency-Key"
TENANT_HEADER = "Eventstore-Tenant-Id"
JOB_HEADER = "Eventstore-Replay-Job-Id"
REPLAY_OF_HEADER = "Eventstore-Replay-Of"
COMPLETED_STEPS_HEADER = "Eventstore-Completed-Steps"
MAX_COMPLETED_STEPS_HEADER = 6 * 1024
"""Completed steps beyond this many bytes of header are left out (`completedStepsTruncated`): an engine
asks the store per step anyway (GET /steps?idempotencyKey=); the list only saves it the calls."""


class CompletedStep(BaseModel):
    """A step that already succeeded for the message being replayed: a replay skips it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    name: str
    idempotency_key: str = Field(alias="idempotencyKey")
    execution_id: str = Field(alias="executionId")
    step_id: str = Field(alias="stepId")


class ReplayMarks(BaseModel):
    """What makes a delivery a replay, beside the message's bytes."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    replay_id: UUID = Field(alias="replayId")
    original_event_id: UUID = Field(alias="originalEventId")
    idempotency_key: str = Field(
        alias="idempotencyKey",
        description="The original message's key: its operationId when it has one, else its event id.",
    )
    tenant_id: str = Field(alias="tenantId")
    job_id: UUID | None = Field(default=None, alias="jobId")
    replay_of: str | None = Field(
        default=None,
        alias="replayOf",
        description="The message's latest execution when the replay was sent: what an engine names as the "
        "execution this one replays (ExecutionStarted's replayOf).",
    )
    completed_steps: tuple[CompletedStep, ...] = Field(default=(), alias="completedSteps")
    completed_steps_truncated: bool = Field(default=False, alias="completedStepsTruncated")


class ReplayDelivery(BaseModel):
    """One replay as a router receives it."""

    model_config = ConfigDict(frozen=True)

    marks: ReplayMarks
    body: bytes
    content_type: str


# --- Storage queue ----------------------------------------------------------------------------------------


def queue_document(delivery: ReplayDelivery) -> bytes:
    """The JSON document put on a queue for `delivery` (before the queue's own base64)."""
    return json.dumps(
        {
            REPLAY_MEMBER: delivery.marks.model_dump(mode="json", by_alias=True),
            "contentType": delivery.content_type,
            "body": base64.b64encode(delivery.body).decode("ascii"),
        },
        separators=(",", ":"),
    ).encode()


def queue_text(delivery: ReplayDelivery) -> str:
    """The queue message text for `delivery`: the document, base64-encoded as the Functions host expects."""
    return base64.b64encode(queue_document(delivery)).decode("ascii")


def parse_queue_message(body: bytes) -> tuple[ReplayMarks | None, bytes, str | None]:
    """An engine's view of one queue message's bytes (already base64-decoded): `(marks, original bytes,
    content type)` for a replay, `(None, body, None)` for any other message."""
    if REPLAY_MEMBER.encode() not in body:  # the cheap test first: most messages are not replays
        return None, body, None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None, body, None
    if not isinstance(document, dict) or REPLAY_MEMBER not in document:
        return None, body, None
    try:
        marks = ReplayMarks.model_validate(document[REPLAY_MEMBER])
        original = base64.b64decode(str(document["body"]).encode("ascii"), validate=True)
        content_type = str(document.get("contentType") or "application/json")
    except (ValidationError, KeyError, binascii.Error, UnicodeEncodeError):
        return None, body, None
    return marks, original, content_type


# --- HTTP -------------------------------------------------------------------------------------------------


def http_headers(delivery: ReplayDelivery) -> dict[str, str]:
    """The `Eventstore-*` headers of an HTTP replay (the content type and the secret are added by the
    router)."""
    marks = delivery.marks
    headers = {
        REPLAY_ID_HEADER: str(marks.replay_id),
        ORIGINAL_EVENT_HEADER: str(marks.original_event_id),
        IDEMPOTENCY_KEY_HEADER: _header_text(marks.idempotency_key),
        TENANT_HEADER: marks.tenant_id,
    }
    if marks.job_id is not None:
        headers[JOB_HEADER] = str(marks.job_id)
    if marks.replay_of is not None:
        headers[REPLAY_OF_HEADER] = _header_text(marks.replay_of)
    steps = json.dumps([s.model_dump(mode="json", by_alias=True) for s in marks.completed_steps], separators=(",", ":"))
    if len(steps) <= MAX_COMPLETED_STEPS_HEADER and not marks.completed_steps_truncated:
        headers[COMPLETED_STEPS_HEADER] = _header_text(steps)
    else:
        headers[COMPLETED_STEPS_HEADER + "-Truncated"] = "true"
    return headers


def marks_from_headers(headers: Mapping[str, str]) -> ReplayMarks | None:
    """The replay marks of an HTTP request's headers (any case), or None when it is not a replay."""
    lower = {k.lower(): v for k, v in headers.items()}
    replay_id = lower.get(REPLAY_ID_HEADER.lower())
    if replay_id is None:
        return None
    steps_text = lower.get(COMPLETED_STEPS_HEADER.lower())
    document: dict[str, Any] = {
        "replayId": replay_id,
        "originalEventId": lower.get(ORIGINAL_EVENT_HEADER.lower()),
        "idempotencyKey": _from_header_text(lower.get(IDEMPOTENCY_KEY_HEADER.lower(), "")),
        "tenantId": lower.get(TENANT_HEADER.lower()),
        "jobId": lower.get(JOB_HEADER.lower()),
        "replayOf": _from_header_text(lower[REPLAY_OF_HEADER.lower()]) if REPLAY_OF_HEADER.lower() in lower else None,
        "completedSteps": json.loads(_from_header_text(steps_text)) if steps_text else [],
        "completedStepsTruncated": (COMPLETED_STEPS_HEADER + "-Truncated").lower() in lower,
    }
    return ReplayMarks.model_validate(document)


def _header_text(text: str) -> str:
    """Header values are Latin-1 on the wire: text outside printable ASCII travels percent-encoded."""
    if text.isascii() and text.isprintable():
        return text
    return "utf-8''" + quote(text, safe="")


def _from_header_text(text: str) -> str:
    if text.startswith("utf-8''"):
        return unquote(text[len("utf-8''") :])
    return text
