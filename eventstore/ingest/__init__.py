"""Ingest: the wire shapes the HTTP and queue functions accept, mapped to `NewEvent`s and appended.

Pure domain: no Azure Functions imports, callable and testable without the runtime.

Messages (`POST /api/tenants/{tenantId}/messages`, queue `workflow-messages`): `messages`
    A Marain `WorkflowMessageEnvelope` (`eventstore_local/samples/envelope-*.json`), recorded byte-exact
    in the tenant's audit stream with its `operationId` as the event id.
Outcomes (`POST /api/tenants/{tenantId}/instances/{instanceId}/events`): `outcomes`
    One event or a batch for one instance: our own shape or Marain engine CloudEvents.
Outcomes from the queue `workflow-outcomes`: `outcome_queue`
    The same events, in a message that names its own tenant and instance.

Poisoned queue messages (`poisoned`): `diagnose` reads one again the way its queue's function did, to say
why it cannot be recorded.

Every `record_*` returns a `Recorded`. Each body is parsed once (`json_spans` keeps each member's exact
text, so payloads are stored byte-exact), and each tenant id is validated once, where it enters.
Queue messages are base64 on the wire (host.json `messageEncoding`); the functions receive the decoded
bytes, which is what these functions take.
"""

from eventstore.ingest.content_types import (
    CLOUDEVENT_BATCH_CONTENT_TYPE,
    CLOUDEVENT_CONTENT_TYPE,
    ENVELOPE_CONTENT_TYPE,
    JSON_MEDIA_TYPE_PATTERN,
    MESSAGE_CONTENT_TYPES,
    OUTCOME_CONTENT_TYPES,
    check_message_content_type,
    is_json_media_type,
)
from eventstore.ingest.messages import envelope_to_event, parse_envelope, record_message, record_queued_message
from eventstore.ingest.outcome_queue import OutcomeMessage, parse_outcome_message, record_queued_outcomes
from eventstore.ingest.outcomes import (
    CLOUDEVENT_ID_NAMESPACE,
    cloudevent_event_id,
    outcomes_to_events,
    record_outcomes,
)
from eventstore.ingest.poisoned import MESSAGES_QUEUE, OUTCOMES_QUEUE, POISON_SUFFIX, Diagnosis, diagnose
from eventstore.ingest.recorded import Recorded
from eventstore.ingest.wire import (
    CLOUDEVENT_TYPES,
    EngineCloudEvent,
    HostedWorkflowTrigger,
    OutcomeEvent,
    StartWorkflowInstanceRequest,
    WorkflowMessageEnvelope,
)

__all__ = [
    "CLOUDEVENT_BATCH_CONTENT_TYPE",
    "CLOUDEVENT_CONTENT_TYPE",
    "CLOUDEVENT_ID_NAMESPACE",
    "CLOUDEVENT_TYPES",
    "ENVELOPE_CONTENT_TYPE",
    "JSON_MEDIA_TYPE_PATTERN",
    "MESSAGES_QUEUE",
    "MESSAGE_CONTENT_TYPES",
    "OUTCOMES_QUEUE",
    "OUTCOME_CONTENT_TYPES",
    "POISON_SUFFIX",
    "Diagnosis",
    "EngineCloudEvent",
    "HostedWorkflowTrigger",
    "OutcomeEvent",
    "OutcomeMessage",
    "Recorded",
    "StartWorkflowInstanceRequest",
    "WorkflowMessageEnvelope",
    "check_message_content_type",
    "cloudevent_event_id",
    "diagnose",
    "envelope_to_event",
    "is_json_media_type",
    "outcomes_to_events",
    "parse_envelope",
    "parse_outcome_message",
    "record_message",
    "record_outcomes",
    "record_queued_message",
    "record_queued_outcomes",
]
