"""Messages: a Marain `WorkflowMessageEnvelope` recorded byte-exact in the tenant's audit stream.

Over HTTP the tenant is the route's and the envelope must name the same one; on the `workflow-messages`
queue the envelope's own `tenantId` is the tenant. The event is `TriggerReceived` (`isTrigger`) or
`InstanceCreationRequestReceived` (`isStartWorkflowRequest`), with the `operationId` as its id: the same
message delivered twice is the same event, stored once.
"""

from __future__ import annotations

from uuid import UUID

from eventstore.errors import InvalidInput
from eventstore.event_types import EventType
from eventstore.ingest.json_spans import JsonDocument, member_values
from eventstore.ingest.recorded import Recorded
from eventstore.ingest.validation import names_tenant, new_event, validated
from eventstore.ingest.wire import WorkflowMessageEnvelope
from eventstore.models import JSON_CONTENT_TYPE, NewEvent, StreamState
from eventstore.store import AUDIT_STREAM_ID, EventStore, validate_instance_id
from eventstore.tenancy import validate_tenant_id


def parse_envelope(raw_body: bytes) -> WorkflowMessageEnvelope:
    """The envelope in `raw_body`, checked for the rules ingest relies on."""
    document = JsonDocument(raw_body, "the message")
    start = document.root()
    members, end = document.object_at(start, "message")
    document.expect_end(end)
    envelope = validated(WorkflowMessageEnvelope, member_values(members), None)
    if envelope.is_trigger == envelope.is_start_workflow_request:
        raise InvalidInput("exactly one of isTrigger and isStartWorkflowRequest must be true", field="isTrigger")
    if envelope.is_trigger and envelope.trigger is None:
        raise InvalidInput("a trigger envelope (isTrigger) needs its 'trigger'", field="trigger")
    if envelope.is_start_workflow_request and envelope.start_workflow_instance_request is None:
        raise InvalidInput(
            "a start-request envelope (isStartWorkflowRequest) needs its 'startWorkflowInstanceRequest'",
            field="startWorkflowInstanceRequest",
        )
    return envelope


def _operation_id(envelope: WorkflowMessageEnvelope) -> UUID:
    try:
        return UUID(envelope.operation_id)
    except ValueError:
        raise InvalidInput(f"operationId {envelope.operation_id!r} is not a UUID", field="operationId") from None


def _instance_of(envelope: WorkflowMessageEnvelope) -> str | None:
    start = envelope.start_workflow_instance_request
    if start is not None and start.workflow_instance_id:
        return validate_instance_id(start.workflow_instance_id, "startWorkflowInstanceRequest.workflowInstanceId")
    # A property or a trigger subject only hints at the instance: one that could not be an instance id
    # leaves the message unlinked rather than refused (the message itself is still worth recording).
    named = envelope.properties.get("WorkflowInstanceId")
    if _could_be_instance_id(named):
        return str(named)
    if envelope.trigger is not None and len(envelope.trigger.subjects) == 1:
        subject = envelope.trigger.subjects[0]
        return subject if _could_be_instance_id(subject) else None
    return None


def _could_be_instance_id(value: object) -> bool:
    try:
        validate_instance_id(value)
    except InvalidInput:
        return False
    return True


# What the client called each NewEvent field an envelope fills (an error names the member as sent).
_ENVELOPE_NAMES = {
    "workflow_id": "startWorkflowInstanceRequest.workflowId",
    "workflow_instance_id": "startWorkflowInstanceRequest.workflowInstanceId",
    "correlation_id": "operationId",
}


def _envelope_event(envelope: WorkflowMessageEnvelope, raw_body: bytes, source: str) -> NewEvent:
    start = envelope.start_workflow_instance_request
    event_id = _operation_id(envelope)
    kind = EventType.TRIGGER_RECEIVED if envelope.is_trigger else EventType.INSTANCE_CREATION_REQUEST_RECEIVED
    return new_event(
        {
            "event_id": event_id,
            "event_type": kind,
            "payload": raw_body,
            "content_type": JSON_CONTENT_TYPE,
            "workflow_id": start.workflow_id if start is not None else None,
            "workflow_instance_id": _instance_of(envelope),
            "correlation_id": envelope.operation_id,
            "source_system": source,
        },
        None,
        _ENVELOPE_NAMES,
    )


def _event_sent_to(tenant_id: str, envelope: WorkflowMessageEnvelope, raw_body: bytes, source: str) -> NewEvent:
    """The event for an envelope sent to `tenant_id` (canonical), which it must name itself."""
    if not names_tenant(envelope.tenant_id, tenant_id):
        raise InvalidInput(
            f"the envelope's tenantId {envelope.tenant_id!r} is not the tenant it was sent to ({tenant_id})",
            field="tenantId",
        )
    return _envelope_event(envelope, raw_body, source)


def envelope_to_event(tenant_id: str, raw_body: bytes, source: str) -> tuple[str, NewEvent]:
    """The audit-stream event for a message envelope received for `tenant_id` (the route's or queue's)."""
    canonical = validate_tenant_id(tenant_id)
    return AUDIT_STREAM_ID, _event_sent_to(canonical, parse_envelope(raw_body), raw_body, source)


def record_message(store: EventStore, tenant_id: str, raw_body: bytes, source: str) -> Recorded:
    """Record a message sent for `tenant_id`; idempotent on its operationId."""
    tenant = store.tenant(tenant_id)  # InvalidTenantId / UnknownTenant before the body is looked at
    event = _event_sent_to(tenant.tenant_id, parse_envelope(raw_body), raw_body, source)
    result = tenant.append(AUDIT_STREAM_ID, [event], StreamState.ANY)
    return Recorded(tenant.tenant_id, AUDIT_STREAM_ID, event.workflow_instance_id, [event], result)


def record_queued_message(store: EventStore, raw_body: bytes) -> Recorded:
    """Record a `workflow-messages` queue message: the tenant is the envelope's own `tenantId`."""
    envelope = parse_envelope(raw_body)
    tenant = store.tenant(envelope.tenant_id)  # the envelope names the tenant it is for, so it is its own
    event = _envelope_event(envelope, raw_body, "queue")
    result = tenant.append(AUDIT_STREAM_ID, [event], StreamState.ANY)
    return Recorded(tenant.tenant_id, AUDIT_STREAM_ID, event.workflow_instance_id, [event], result)
