"""Ingest over HTTP and from Storage queues: messages into the audit stream, outcomes into instances.

Queue messages are base64-encoded on the wire (host.json `extensions.queues.messageEncoding`); senders
must encode the same way (the Azure SDK's `BinaryBase64EncodePolicy`, or `TextBase64EncodePolicy` for
text). A message that fails is logged with the reason, its id and dequeue count, counted, and raised
again: the host retries it until `maxDequeueCount` (host.json), then moves it to `<queue>-poison`.
A message for a tenant that was never onboarded is such a failure: it stores nothing and ends in the
poison queue, from where it can be replayed once the tenant exists.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated
from urllib.parse import quote

import azure.functions as func
from pydantic import Field

from eventstore import ingest
from eventstore.errors import ConcurrencyConflict, DuplicateEventId, InvalidInput, UnknownTenant
from eventstore.http.exchange import (
    body_within_limit,
    event_path,
    expected_version,
    header,
    instance_id_param,
    json_response,
    route_param,
    tenant_path,
)
from eventstore.http.metrics import COUNTERS, QUEUE_MESSAGE_FAILURES, QUEUE_MESSAGES_RECORDED
from eventstore.http.models import MessageAccepted, OutcomesAppended
from eventstore.http.routes import LOCATION, Body, Header, Operation, Reply, http_function
from eventstore.ingest import (
    CLOUDEVENT_BATCH_CONTENT_TYPE,
    CLOUDEVENT_CONTENT_TYPE,
    ENVELOPE_CONTENT_TYPE,
    EngineCloudEvent,
    OutcomeEvent,
    WorkflowMessageEnvelope,
)
from eventstore.models import JSON_CONTENT_TYPE
from eventstore.services import services
from eventstore.telemetry import INGEST_DURATION, timed

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger(__name__)

MESSAGES_QUEUE = "workflow-messages"
OUTCOMES_QUEUE = "workflow-outcomes"
QUEUE_CONNECTION = "AzureWebJobsStorage"

# Retrying these cannot succeed: the message itself is wrong (or names a tenant that does not exist).
_PERMANENT = (InvalidInput, UnknownTenant, DuplicateEventId, ConcurrencyConflict)

POST_MESSAGE = Operation(
    name="post_message",
    method="POST",
    route="tenants/{tenantId}/messages",
    auth_level="FUNCTION",
    tag="ingest",
    summary="Record a message received by the engine's front door",
    description="The body is a Marain WorkflowMessageEnvelope (a trigger or a start request). It is recorded "
    "byte-exact in the tenant's audit stream as TriggerReceived or InstanceCreationRequestReceived, with the "
    "envelope's operationId as event id: sending the same message again answers the same positions with "
    "repeated=true and stores nothing. The envelope's tenantId must be the route's tenant.",
    body=Body(
        {JSON_CONTENT_TYPE: WorkflowMessageEnvelope, ENVELOPE_CONTENT_TYPE: WorkflowMessageEnvelope},
        "A WorkflowMessageEnvelope.",
    ),
    replies=(
        Reply(
            202,
            "Recorded (or recorded before, when repeated).",
            MessageAccepted,
            headers=(LOCATION,),
            example={
                "eventId": "7e7033bf-3e51-4df6-94d0-a51fc0f9afc3",
                "sequenceNumber": 12,
                "globalPosition": 40,
                "repeated": False,
            },
        ),
    ),
    errors=(400, 404, 409, 413, 415, 503),
)


@http_function(blueprint, POST_MESSAGE)
def post_message(req: func.HttpRequest) -> func.HttpResponse:
    store = services().store
    body = body_within_limit(req, store.settings)
    ingest.check_message_content_type(header(req, "Content-Type"))
    with timed(INGEST_DURATION, operation="message", source="http") as timing:
        recorded = ingest.record_message(store, route_param(req, "tenantId"), body, "http")
        timing.set(outcome=_outcome(recorded.result.repeated))
    if not recorded.result.repeated:
        services().nudge(recorded.tenant_id)
    event_id = recorded.events[0].event_id
    answer = MessageAccepted(
        event_id=str(event_id),
        sequence_number=recorded.result.sequence_numbers[0],
        global_position=recorded.result.global_positions[0],
        repeated=recorded.result.repeated,
    )
    return json_response(answer, 202, {"Location": event_path(recorded.tenant_id, event_id)})


_ETAG_VERSION = Header("ETag", 'The stream\'s version after the append, quoted ("5"): send it as If-Match.')
APPEND_OUTCOMES = Operation(
    name="append_outcomes",
    method="POST",
    route="tenants/{tenantId}/instances/{instanceId}/events",
    auth_level="FUNCTION",
    tag="ingest",
    summary="Append outcome events to a workflow instance's history",
    description="One event or a JSON array of events, appended atomically. Each item is either "
    "`{eventId, eventType, payload, userId?, correlationId?, causationId?, sourceSystem?, workflowId?, "
    "contentType?}` (payload: any JSON, stored exactly as written) or a Marain engine CloudEvent "
    "(io.marain.workflow.instance.created / transition-completed / faulted), stored exactly as received. "
    'If-Match: "<n>" appends only when the stream\'s version is n (0: only to a new stream; *: only to an '
    "existing one); otherwise 409 with actualVersion. Repeating an append answers its first positions.",
    headers=(
        Header(
            "If-Match",
            'Expected stream version, quoted ("5"), or * for "the stream exists".',
            {"type": "string", "pattern": r'^\s*(?:"\d{1,18}"|\d{1,18}|\*)\s*$'},
        ),
    ),
    body=Body(
        {
            JSON_CONTENT_TYPE: OutcomeEvent
            | EngineCloudEvent
            | Annotated[list[OutcomeEvent | EngineCloudEvent], Field(min_length=1)],
            CLOUDEVENT_CONTENT_TYPE: EngineCloudEvent,
            CLOUDEVENT_BATCH_CONTENT_TYPE: Annotated[list[EngineCloudEvent], Field(min_length=1)],
        },
        "Outcome events.",
    ),
    replies=(
        Reply(
            201,
            "Appended (or appended before, when repeated).",
            OutcomesAppended,
            headers=(LOCATION, _ETAG_VERSION),
            example={
                "eventIds": ["6f1c2f9e-54a4-4a55-8b0b-0b7e8b3c7c11"],
                "sequenceNumbers": [3],
                "globalPositions": [41],
                "version": 3,
                "repeated": False,
            },
        ),
    ),
    errors=(400, 404, 409, 413, 415, 503),
)


@http_function(blueprint, APPEND_OUTCOMES)
def append_outcomes(req: func.HttpRequest) -> func.HttpResponse:
    store = services().store
    body = body_within_limit(req, store.settings)
    expected = expected_version(req)
    tenant_id, instance_id = route_param(req, "tenantId"), instance_id_param(req)
    with timed(INGEST_DURATION, operation="outcomes", source="http") as timing:
        recorded = ingest.record_outcomes(store, tenant_id, instance_id, body, header(req, "Content-Type"), expected)
        timing.set(outcome=_outcome(recorded.result.repeated))
    result = recorded.result
    if not result.repeated:
        services().nudge(tenant_id)
    answer = OutcomesAppended(
        event_ids=[str(e.event_id) for e in recorded.events],
        sequence_numbers=list(result.sequence_numbers),
        global_positions=list(result.global_positions),
        version=result.version,
        repeated=result.repeated,
    )
    history = f"{tenant_path(recorded.tenant_id)}/instances/{quote(instance_id, safe='')}/events"
    location = f"{history}?fromSequence={result.sequence_numbers[0]}"
    return json_response(answer, 201, {"Location": location, "ETag": f'"{result.version}"'})


def _outcome(repeated: bool) -> str:
    """The `outcome` of an ingest timing (an exception makes it `error`)."""
    return "repeated" if repeated else "recorded"


@contextmanager
def _failures_reported(queue: str, msg: func.QueueMessage) -> Iterator[None]:
    """Log and count a failed message, then raise again so the host retries it and finally poisons it."""
    try:
        yield
    except _PERMANENT as exc:
        COUNTERS.add(QUEUE_MESSAGE_FAILURES, queue=queue, reason=type(exc).__name__)
        log.error(
            "queue %s: message %s (dequeue count %s) refused, it will end in %s-poison: %s: %s",
            queue, msg.id, msg.dequeue_count, queue, type(exc).__name__, exc,
        )  # fmt: skip
        raise
    except Exception as exc:
        COUNTERS.add(QUEUE_MESSAGE_FAILURES, queue=queue, reason=type(exc).__name__)
        log.warning(
            "queue %s: message %s (dequeue count %s) failed, the host will retry it: %s: %s",
            queue, msg.id, msg.dequeue_count, type(exc).__name__, exc, exc_info=exc,
        )  # fmt: skip
        raise
    COUNTERS.add(QUEUE_MESSAGES_RECORDED, queue=queue)


@blueprint.function_name("record_queued_message")
@blueprint.queue_trigger(arg_name="msg", queue_name=MESSAGES_QUEUE, connection=QUEUE_CONNECTION)
def record_queued_message(msg: func.QueueMessage) -> None:
    with _failures_reported(MESSAGES_QUEUE, msg), timed(INGEST_DURATION, operation="message", source="queue") as timing:
        recorded = ingest.record_queued_message(services().store, msg.get_body())
        timing.set(outcome=_outcome(recorded.result.repeated))
    if not recorded.result.repeated:
        services().nudge(recorded.tenant_id)
    log.info(
        "queue %s: message %s recorded as event %s%s",
        MESSAGES_QUEUE, msg.id, recorded.events[0].event_id, " (repeat)" if recorded.result.repeated else "",
    )  # fmt: skip


@blueprint.function_name("record_queued_outcomes")
@blueprint.queue_trigger(arg_name="msg", queue_name=OUTCOMES_QUEUE, connection=QUEUE_CONNECTION)
def record_queued_outcomes(msg: func.QueueMessage) -> None:
    with (
        _failures_reported(OUTCOMES_QUEUE, msg),
        timed(INGEST_DURATION, operation="outcomes", source="queue") as timing,
    ):
        recorded = ingest.record_queued_outcomes(services().store, msg.get_body())
        timing.set(outcome=_outcome(recorded.result.repeated))
    if not recorded.result.repeated:
        services().nudge(recorded.tenant_id)
    log.info(
        "queue %s: message %s appended %d event(s) to instance %s at %s%s",
        OUTCOMES_QUEUE, msg.id, len(recorded.events), recorded.workflow_instance_id,
        recorded.result.sequence_numbers, " (repeat)" if recorded.result.repeated else "",
    )  # fmt: skip


OPERATIONS = (POST_MESSAGE, APPEND_OUTCOMES)
