"""The ingest queues' dead letters over HTTP (admin level: they name every tenant, onboarded or not): what the
Functions host gave up on and the alert timer took off the poison queues (docs/alerts.md), each kept
byte-exact with why ingest cannot record it, and the redrive that sends one back to its queue once the cause
is fixed (a tenant onboarded, a bug fixed)."""

from __future__ import annotations

import base64

import azure.functions as func

from eventstore.alerts.poison_queues import PoisonQueues, redrive
from eventstore.errors import InvalidInput
from eventstore.http.dead_letter_models import DeadLettersPage, DeadLettersQuery, QueueDeadLetter, RedriveRequest
from eventstore.http.exchange import asked_body, json_response, parse_query, route_param
from eventstore.http.routes import Body, Operation, Reply, http_function
from eventstore.models import JSON_CONTENT_TYPE
from eventstore.services import services
from eventstore.store import QueueDeadLetterRow, UnknownDeadLetter
from eventstore.tenancy import validate_tenant_id

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]

_MAX_ID = 2**62


def _item(row: QueueDeadLetterRow) -> QueueDeadLetter:
    try:
        body, encoding = row.body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        body, encoding = base64.b64encode(row.body).decode("ascii"), "base64"
    return QueueDeadLetter(
        id=row.id, queue=row.queue, message_id=row.message_id, tenant_id=row.tenant_id,
        message_type=row.message_type, workflow_id=row.workflow_id, reason=row.reason,
        queued_at=row.queued_at, dead_at=row.dead_at,
        body_sha256=row.body_sha256.hex(), body_encoding=encoding, body=body, was_base64=row.base64,
        redriven_at=row.redriven_at, redriven_by=row.redriven_by, redrive_reason=row.redrive_reason,
        redrives=row.redrives, erasure_id=str(row.erasure_id) if row.erasure_id else None,
    )  # fmt: skip


def _letter_id(req: func.HttpRequest) -> int:
    text = route_param(req, "deadLetterId")
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < _MAX_ID:
        raise InvalidInput(f"deadLetterId must be a dead letter's id, a positive integer (got {text!r})",
                           field="deadLetterId")  # fmt: skip
    return int(text)


def _letter(req: func.HttpRequest) -> QueueDeadLetterRow:
    letter_id = _letter_id(req)
    row = services().store.queue_dead_letters().get(letter_id)
    if row is None:
        raise UnknownDeadLetter(letter_id)
    return row


_EXAMPLE = {
    "id": 7,
    "queue": "workflow-messages-poison",
    "messageId": "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
    "tenantId": "0c4b9a3f6e2d4b1a9c8e7f6a5b4c3d2e",
    "messageType": "Submit",
    "workflowId": "simple-expenses-workflow",
    "reason": "UnknownTenant: tenant 0c4b9a3f6e2d4b1a9c8e7f6a5b4c3d2e was never onboarded",
    "queuedAt": "2026-12-01T09:00:04Z",
    "deadAt": "2026-12-01T09:01:00Z",
    "bodySha256": "9f2c…",
    "bodyEncoding": "utf-8",
    "body": '{"tenantId": "0c4b9a3f6e2d4b1a9c8e7f6a5b4c3d2e", "operationId": "…"}',
    "wasBase64": True,
    "redrivenAt": None,
    "redrivenBy": None,
    "redriveReason": None,
    "redrives": 0,
    "erasureId": None,
}

LIST_DEAD_LETTERS = Operation(
    name="list_dead_letters",
    method="GET",
    route="dead-letters",
    auth_level="ADMIN",
    tag="alerts",
    summary="Messages the ingest queues gave up on, kept byte-exact with why",
    description="Every message the Functions host moved to workflow-messages-poison or workflow-outcomes-poison, "
    "taken off it by the alert timer and kept here with the tenant, type and workflow it names and why ingest "
    "cannot record it. In the order they were kept; the next page starts after `nextAfter`.",
    query=DeadLettersQuery,
    replies=(
        Reply(
            200, "One page of dead letters.", DeadLettersPage, example={"deadLetters": [_EXAMPLE], "nextAfter": None}
        ),
    ),
    errors=(400, 503),
)


@http_function(blueprint, LIST_DEAD_LETTERS)
def list_dead_letters(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, DeadLettersQuery)
    tenant_id = validate_tenant_id(params.tenant_id) if params.tenant_id is not None else None
    rows = (
        services()
        .store.queue_dead_letters()
        .list(
            tenant_id=tenant_id, queue=params.queue, waiting=params.waiting, after_id=params.after, limit=params.limit
        )
    )
    next_after = rows[-1].id if len(rows) == params.limit else None
    return json_response(DeadLettersPage(dead_letters=[_item(r) for r in rows], next_after=next_after))


GET_DEAD_LETTER = Operation(
    name="get_dead_letter",
    method="GET",
    route="dead-letters/{deadLetterId}",
    auth_level="ADMIN",
    tag="alerts",
    summary="One queue dead letter, with its exact body",
    description="The body as its function received it (base64-decoded from the queue): as text when it is "
    "UTF-8, else base64 (`bodyEncoding`), with its SHA-256.",
    replies=(Reply(200, "The dead letter.", QueueDeadLetter, example=_EXAMPLE),),
    errors=(400, 404, 503),
)


@http_function(blueprint, GET_DEAD_LETTER)
def get_dead_letter(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(_item(_letter(req)))


REDRIVE_DEAD_LETTER = Operation(
    name="redrive_dead_letter",
    method="POST",
    route="dead-letters/{deadLetterId}/redrive",
    auth_level="ADMIN",
    tag="alerts",
    summary="Send a queue dead letter back to its ingest queue",
    description="Once its cause is fixed (the tenant onboarded, say), the message goes back to the queue it "
    "was poisoned from, encoded as it came; who asked and why are recorded on the dead letter. Ingest records "
    "a message once, so a redrive repeated (or of a message recorded meanwhile) stores nothing twice; one that "
    "fails again is poisoned again and comes back as a new dead letter.",
    body=Body(
        {JSON_CONTENT_TYPE: RedriveRequest},
        "Who asks and why.",
        example={"requestedBy": "ops@contoso.example", "reason": "tenant onboarded"},
    ),
    replies=(Reply(200, "Sent back; the dead letter as stamped.", QueueDeadLetter, example=_EXAMPLE),),
    errors=(400, 404, 415, 503),
)


@http_function(blueprint, REDRIVE_DEAD_LETTER)
def redrive_dead_letter(req: func.HttpRequest) -> func.HttpResponse:
    settings = services().settings
    asked = asked_body(req, settings, RedriveRequest)
    letter = _letter(req)
    queues = PoisonQueues.required(settings)
    return json_response(_item(redrive(services().store, queues, letter, asked.requested_by, asked.reason)))


OPERATIONS = (LIST_DEAD_LETTERS, GET_DEAD_LETTER, REDRIVE_DEAD_LETTER)
