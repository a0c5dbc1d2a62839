"""The `workflow-outcomes` queue: a message names its own tenant and instance, in one of two shapes.

- `{"tenantId": ..., "workflowInstanceId": ..., "events": [<item>, ...]}`, each item as in an outcome
  body (our own shape or an engine CloudEvent), or
- a single engine CloudEvent (tenant = `maraintenantid`, instance = `subject` or
  `data.workflowInstanceId`), or a JSON array of such CloudEvents (all of one tenant and instance).
"""

from __future__ import annotations

from dataclasses import dataclass

from eventstore.errors import InvalidInput
from eventstore.ingest.json_spans import JsonDocument
from eventstore.ingest.outcomes import event_items, to_events
from eventstore.ingest.recorded import Recorded
from eventstore.models import NewEvent, StreamState
from eventstore.store import EventStore, instance_stream_id, validate_instance_id
from eventstore.tenancy import validate_tenant_id


@dataclass(frozen=True, slots=True)
class OutcomeMessage:
    """A `workflow-outcomes` queue message, parsed."""

    tenant_id: str
    """Canonical (a GUID lowered)."""
    workflow_instance_id: str
    events: list[NewEvent]


def _required_text(value: object, field: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} is missing", field=field)
    return value


def parse_outcome_message(raw_body: bytes) -> OutcomeMessage:
    """A `workflow-outcomes` message: `{"tenantId", "workflowInstanceId", "events": [...]}`, or one engine
    CloudEvent, or an array of them (tenant and instance named by the CloudEvents themselves)."""
    document = JsonDocument(raw_body, "the message")
    start = document.root()
    items, end, is_array = event_items(document, start, "message", "message")
    document.expect_end(end)
    head = items[0].members
    if is_array or "specversion" in head:
        first = head.get("data")
        data = first.value if first is not None and isinstance(first.value, dict) else {}
        tenant_span, subject = head.get("maraintenantid"), head.get("subject")
        tenant_id = _required_text(tenant_span.value if tenant_span else None, "maraintenantid", "maraintenantid")
        instance = subject.value if subject is not None else data.get("workflowInstanceId")
        instance_id = _required_text(instance, "subject", "the CloudEvent's subject (the workflow instance id)")
        canonical = validate_tenant_id(tenant_id)
        validate_instance_id(instance_id, "subject" if subject is not None else "data.workflowInstanceId")
        events = to_events(document, items, canonical, instance_id, only_cloudevents=True, whole=not is_array)
        return OutcomeMessage(canonical, instance_id, events)
    unknown = set(head) - {"tenantId", "workflowInstanceId", "events"}
    if unknown:
        raise InvalidInput(f"unexpected member(s) {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    tenant_id = validate_tenant_id(head["tenantId"].value if "tenantId" in head else None)
    instance_id = _required_text(
        head["workflowInstanceId"].value if "workflowInstanceId" in head else None,
        "workflowInstanceId",
        "workflowInstanceId",
    )
    validate_instance_id(instance_id, "workflowInstanceId")
    if "events" not in head or not document.text.startswith("[", head["events"].start):
        raise InvalidInput("'events' must be an array of events", field="events")
    events_items, _, _ = event_items(document, head["events"].start, "events")
    events = to_events(document, events_items, tenant_id, instance_id, only_cloudevents=False, whole=False)
    return OutcomeMessage(tenant_id, instance_id, events)


def record_queued_outcomes(store: EventStore, raw_body: bytes) -> Recorded:
    """Record a `workflow-outcomes` queue message (any expected version: a queue has no If-Match)."""
    message = parse_outcome_message(raw_body)  # its tenant id validated there, once; canonical from then on
    tenant = store.tenant(message.tenant_id)
    stream_id = instance_stream_id(message.workflow_instance_id)
    result = tenant.append(stream_id, message.events, StreamState.ANY)
    return Recorded(tenant.tenant_id, stream_id, message.workflow_instance_id, message.events, result)
