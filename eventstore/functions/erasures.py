"""Erasure over HTTP (admin level): a data subject's personal data removed from the tenant's store through the
maintenance path, and recorded (docs/retention.md, "Erasure")."""

from __future__ import annotations

import azure.functions as func

from eventstore.http.erasure_models import MAX_LISTED, ErasureAnswer, ErasureRequest
from eventstore.http.exchange import asked_body, event_path, json_response, route_param
from eventstore.http.routes import LOCATION, RETRY_AFTER, Body, Operation, Reply, http_function
from eventstore.json_paths import JsonPath
from eventstore.models import JSON_CONTENT_TYPE
from eventstore.retention.erasure import ErasureResult, SubjectKind, ValueSubject, erase, redact_value
from eventstore.services import services
from eventstore.store import REHYDRATION_RETRY_SECONDS

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]

_EXAMPLE = {
    "erasureId": "5b0e4a4e-0f7c-4f57-9c7e-2d4b8f9a1c3e",
    "subject": "workflowInstance",
    "mode": "whole payload",
    "matched": 9,
    "alreadyErased": 0,
    "erased": 9,
    "dryRun": False,
    "eventIds": ["7e7033bf-3e51-4df6-94d0-a51fc0f9afc3"],
    "blobsDeleted": 0,
    "deadLetters": 0,
}

ERASE = Operation(
    name="erase_subject",
    method="POST",
    route="tenants/{tenantId}/erasures",
    auth_level="ADMIN",
    tag="retention",
    summary="Erase a data subject's personal data (GDPR), everywhere the store keeps it",
    description="A workflow instance (every event of its stream and the received messages that name it) or a "
    "user (every event recorded with the user id): their payloads are removed whole from the rows and their JSONB "
    "copies, archived ones crypto-shredded (their data keys destroyed), large ones' blobs deleted, and the views' "
    "copies scrubbed. The rows, their metadata and original hashes stay. Recorded as a PayloadsErased event in "
    "the maintenance stream (the subject only as its SHA-256). Reads of an erased event answer 410 "
    "payload-erased naming the erasure. A jsonValue (a value at JSON paths across event types) is redacted in "
    "place instead: where a payload holds exactly the value at one of the paths it becomes erased:<erasure id>, "
    "the rest stays, and reads answer the redacted payload with erasureId and redactedSha256 in its metadata. "
    "dryRun lists what would be erased; the same erasure asked again erases nothing more.",
    body=Body(
        {JSON_CONTENT_TYPE: ErasureRequest},
        "Whose data, why and who asks.",
        example={
            "subject": {"workflowInstanceId": "claim-1"},
            "reason": "GDPR request 2026-117",
            "requestedBy": "dpo@contoso.example",
        },
    ),
    replies=(
        Reply(
            201, "Erased; Location names the erasure's record.", ErasureAnswer, headers=(LOCATION,), example=_EXAMPLE
        ),
        Reply(
            202,
            "A jsonValue erasure with archived payloads in the Archive tier still to read: their rehydration was "
            "started; what could be redacted now was (Location names its record when there was any). Ask the same "
            "erasure again after Retry-After.",
            ErasureAnswer,
            headers=(LOCATION, RETRY_AFTER),
            example={**_EXAMPLE, "subject": "jsonValue", "mode": "redaction", "pending": 3, "retryAfterSeconds": 3600},
        ),
        Reply(
            200,
            "A dry run, or nothing was left to erase.",
            ErasureAnswer,
            example={**_EXAMPLE, "erasureId": None, "erased": 0, "dryRun": True},
        ),
    ),
    errors=(400, 404, 415, 503),
)


@http_function(blueprint, ERASE)
def erase_subject(req: func.HttpRequest) -> func.HttpResponse:
    store = services().store
    tenant_id = store.tenant(route_param(req, "tenantId")).tenant_id
    asked = asked_body(req, services().settings, ErasureRequest)
    subject = asked.subject
    result: ErasureResult
    if subject.json_value is not None:
        value = subject.json_value
        result = redact_value(
            store, tenant_id,
            ValueSubject(value.value, tuple(JsonPath.parse(p) for p in value.paths), tuple(value.event_types)),
            reason=asked.reason, requested_by=asked.requested_by, dry_run=asked.dry_run,
        )  # fmt: skip
    else:
        kind: SubjectKind = "workflowInstance" if subject.workflow_instance_id is not None else "user"
        named = subject.workflow_instance_id if subject.workflow_instance_id is not None else subject.user_id
        assert named is not None  # the request's model holds exactly one
        result = erase(
            store, tenant_id, kind, named, reason=asked.reason, requested_by=asked.requested_by, dry_run=asked.dry_run
        )
    retry_after = REHYDRATION_RETRY_SECONDS if result.pending else None
    answer = ErasureAnswer(
        erasure_id=str(result.erasure_id) if result.erasure_id else None, subject=result.subject_kind,
        mode="redaction" if result.subject_kind == "jsonValue" else "whole payload", matched=result.matched,
        already_erased=result.already_erased, erased=result.erased, dry_run=result.dry_run,
        event_ids=[str(i) for i in result.event_ids[:MAX_LISTED]], blobs_deleted=result.blobs_deleted,
        dead_letters=result.dead_letters, pending=result.pending, retry_after_seconds=retry_after,
        unreadable=result.unreadable,
    )  # fmt: skip
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    if result.erasure_id is not None:
        headers["Location"] = event_path(tenant_id, result.erasure_id)
    if result.pending and not result.dry_run:
        return json_response(answer, 202, headers)
    return json_response(answer, 200 if result.erasure_id is None else 201, headers)


OPERATIONS = (ERASE,)
