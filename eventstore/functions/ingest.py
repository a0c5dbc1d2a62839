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
from urllib.parse import quote

import azure.functions as func

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
from eventstore.http.routes import http_function
from eventstore.runtime import get_store, nudge_feed

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger(__name__)

MESSAGES_QUEUE = "workflow-messages"
OUTCOMES_QUEUE = "workflow-outcomes"
QUEUE_CONNECTION = "AzureWebJobsStorage"

# Retrying these cannot succeed: the message itself is wrong (or names a tenant that does not exist).
_PERMANENT = (InvalidInput, UnknownTenant, DuplicateEventId, ConcurrencyConflict)


@http_function(blueprint, "post_message")
def post_message(req: func.HttpRequest) -> func.HttpResponse:
    store = get_store()
    body = body_within_limit(req, store.settings)
    ingest.check_message_content_type(header(req, "Content-Type"))
    recorded = ingest.record_message(store, route_param(req, "tenantId"), body, "http")
    if not recorded.result.repeated:
        nudge_feed(recorded.tenant_id)
    answer = MessageAccepted(
        event_id=str(recorded.event_id),
        sequence_number=recorded.result.sequence_numbers[0],
        global_position=recorded.result.global_positions[0],
        repeated=recorded.result.repeated,
    )
    return json_response(answer, 202, {"Location": event_path(recorded.tenant_id, recorded.event_id)})


@http_function(blueprint, "append_outcomes")
def append_outcomes(req: func.HttpRequest) -> func.HttpResponse:
    store = get_store()
    body = body_within_limit(req, store.settings)
    expected = expected_version(req)
    tenant_id, instance_id = route_param(req, "tenantId"), instance_id_param(req)
    events, result = ingest.record_outcomes(store, tenant_id, instance_id, body, header(req, "Content-Type"), expected)
    if not result.repeated:
        nudge_feed(tenant_id)
    answer = OutcomesAppended(
        event_ids=[str(e.event_id) for e in events],
        sequence_numbers=list(result.sequence_numbers),
        global_positions=list(result.global_positions),
        version=result.version,
        repeated=result.repeated,
    )
    history = f"{tenant_path(store.tenant(tenant_id).tenant_id)}/instances/{quote(instance_id, safe='')}/events"
    location = f"{history}?fromSequence={result.sequence_numbers[0]}"
    return json_response(answer, 201, {"Location": location, "ETag": f'"{result.version}"'})


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
    with _failures_reported(MESSAGES_QUEUE, msg):
        recorded = ingest.record_queued_message(get_store(), msg.get_body())
    if not recorded.result.repeated:
        nudge_feed(recorded.tenant_id)
    log.info(
        "queue %s: message %s recorded as event %s%s",
        MESSAGES_QUEUE, msg.id, recorded.event_id, " (repeat)" if recorded.result.repeated else "",
    )  # fmt: skip


@blueprint.function_name("record_queued_outcomes")
@blueprint.queue_trigger(arg_name="msg", queue_name=OUTCOMES_QUEUE, connection=QUEUE_CONNECTION)
def record_queued_outcomes(msg: func.QueueMessage) -> None:
    with _failures_reported(OUTCOMES_QUEUE, msg):
        message, result = ingest.record_queued_outcomes(get_store(), msg.get_body())
    if not result.repeated:
        nudge_feed(message.tenant_id)
    log.info(
        "queue %s: message %s appended %d event(s) to instance %s at %s%s",
        OUTCOMES_QUEUE, msg.id, len(message.events), message.workflow_instance_id, result.sequence_numbers,
        " (repeat)" if result.repeated else "",
    )  # fmt: skip
