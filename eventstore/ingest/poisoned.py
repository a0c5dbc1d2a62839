"""What a poisoned queue message was: its tenant, type and workflow as far as they can be read, and why ingest
cannot record it. The host gives up on a message after `maxDequeueCount` failures and keeps no reason; this
reads the message again the way its function did, so the dead letter and its Slack post can say why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from eventstore.errors import EventStoreError, InvalidInput
from eventstore.ingest.messages import envelope_to_event, parse_envelope
from eventstore.ingest.outcome_queue import parse_outcome_message
from eventstore.models import NewEvent
from eventstore.tenancy import validate_tenant_id

MESSAGES_QUEUE = "workflow-messages"
OUTCOMES_QUEUE = "workflow-outcomes"
POISON_SUFFIX = "-poison"
"""The host moves a message its function failed `maxDequeueCount` times to `<queue>-poison`."""


@dataclass(frozen=True)
class Diagnosis:
    tenant_id: str | None
    """The tenant the message names, when it names a valid tenant id (onboarded or not)."""
    message_type: str | None
    workflow_id: str | None
    reason: str
    readable: bool
    """Whether ingest can read the message now: then only its tenant, or an outage, stood in the way."""


def _named_tenant(body: bytes) -> str | None:
    """The tenant a message names, read loosely (for a message ingest cannot read)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    first = document[0] if isinstance(document, list) and document else document
    if not isinstance(first, dict):
        return None
    for name in ("tenantId", "maraintenantid"):
        try:
            return validate_tenant_id(first.get(name))
        except EventStoreError:
            continue
    return None


def _label(event: NewEvent, body: dict[str, Any]) -> str:
    trigger = body.get("trigger")
    name = trigger.get("triggerName") if isinstance(trigger, dict) else None
    return name if isinstance(name, str) and name else event.event_type


def diagnose(source: str, body: bytes, base64: bool) -> Diagnosis:
    """Read `body`, poisoned on the ingest queue `source`, as that queue's function would."""
    if not base64:
        return Diagnosis(
            _named_tenant(body), None, None, "the message is not base64 (host.json messageEncoding)", readable=False
        )
    try:
        if source == MESSAGES_QUEUE:
            envelope = parse_envelope(body)
            _, event = envelope_to_event(envelope.tenant_id, body, "queue")
            loose = json.loads(body)
            return Diagnosis(
                validate_tenant_id(envelope.tenant_id), _label(event, loose), event.workflow_id,
                "the message can be read: its tenant or an outage stood in the way", readable=True,
            )  # fmt: skip
        if source == OUTCOMES_QUEUE:
            message = parse_outcome_message(body)
            first = message.events[0]
            return Diagnosis(
                message.tenant_id, first.event_type, first.workflow_id,
                "the message can be read: its tenant or an outage stood in the way", readable=True,
            )  # fmt: skip
    except InvalidInput as exc:
        where = f" ({exc.field})" if getattr(exc, "field", None) else ""
        return Diagnosis(_named_tenant(body), None, None, f"{type(exc).__name__}{where}: {exc}", readable=False)
    except EventStoreError as exc:
        return Diagnosis(_named_tenant(body), None, None, f"{type(exc).__name__}: {exc}", readable=False)
    return Diagnosis(_named_tenant(body), None, None, f"no ingest function reads queue {source}", readable=False)
