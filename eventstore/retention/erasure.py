"""Erasure (GDPR): a data subject's personal data removed everywhere the store keeps it, through the
maintenance path, and recorded (docs/retention.md, "Erasure").

Two subjects, each erased **whole**: a workflow instance (every event of its stream, and the received
messages that name it) and a user id (every event recorded with it). Redaction in place (JSON paths
replaced by a marker) would keep the rest of each payload, but it needs each payload read and rewritten,
which archived ones in the Archive tier cannot be, and it trusts that the paths listed are all the places the
subject's data is in. An instance's or a user's payloads are about that instance or user: they go whole.
A value at JSON paths across message types (redaction in place) is not here yet.

Where the data lives, and what happens to it:
- the payload bytes and the JSONB copy in each row: cleared (the row, its metadata and the original hash stay);
- a payload archived to a cold segment: its data key, kept only in the row, is destroyed (crypto-shredding);
- a large payload's blob in the hot container: deleted after the commit when no other row points at it;
- the views: the executions view's copies (step inputs, outputs, errors) of the erased events are cleared
  and their executions recomputed; the instances view's context and last error of an erased instance;
- the erasure itself: a `PayloadsErased` event in the maintenance stream (who, when, why, which events, and
  the subject only as its SHA-256, never its value), in the same transaction.

The same erasure asked again finds nothing left and records nothing: idempotent.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from typing import Literal
from uuid import UUID, uuid4

from eventstore.event_types import EventType
from eventstore.retention.records import maintenance_record
from eventstore.store import ErasureTarget, EventStore, Scrub, ViewWriter
from eventstore.views import traces
from eventstore.views.instances import TABLES as INSTANCE_TABLES

log = logging.getLogger(__name__)

SOURCE = "eventstore-erasure"
SubjectKind = Literal["workflowInstance", "user"]


@dataclass
class ErasureResult:
    tenant_id: str
    subject_kind: SubjectKind
    matched: int
    """Events the subject's data is in."""
    already_erased: int
    """Of them, erased before (by this erasure asked earlier, or another)."""
    erased: int = 0
    erasure_id: UUID | None = None
    """The erasure recorded now (None: a dry run, or nothing left to erase)."""
    dry_run: bool = False
    event_ids: list[UUID] = field(default_factory=list)
    blobs_deleted: int = 0
    dead_letters: int = 0
    """Dead letters of the ingest queues whose body held the subject, emptied."""


def subject_digest(kind: SubjectKind, value: str) -> str:
    """What the record keeps of the subject: a hash, so the erasure can be found again without keeping the
    very value it erased."""
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


def _scrub_traces(event_ids: list[UUID]) -> Scrub:
    def scrub(writer: ViewWriter) -> None:
        rows = writer.execute(
            "UPDATE {facts} SET data = NULL, data_by_ref = false, error = NULL WHERE event_id = ANY(%s)"
            " RETURNING execution_id",
            [event_ids],
        )
        writer.execute("UPDATE {unplaced} SET detail = 'erased' WHERE event_id = ANY(%s)", [event_ids])
        touched = {r[0] for r in rows}
        if touched:
            traces.rewrite_executions(writer, touched)

    return traces.TABLES, scrub


def _scrub_instance(workflow_instance_id: str) -> Scrub:
    def scrub(writer: ViewWriter) -> None:
        writer.execute(
            "UPDATE {instances} SET context = '{{}}', last_error = NULL WHERE workflow_instance_id = %s",
            [workflow_instance_id],
        )

    return INSTANCE_TABLES, scrub


def erase(
    store: EventStore,
    tenant_id: str,
    kind: SubjectKind,
    value: str,
    *,
    reason: str,
    requested_by: str,
    dry_run: bool = False,
) -> ErasureResult:
    """Erase what the subject (`kind`, `value`) left in the tenant's store; with `dry_run`, only say what."""
    erasure = store.erasure(tenant_id)
    targets: list[ErasureTarget] = erasure.of_instance(value) if kind == "workflowInstance" else erasure.of_user(value)
    pending = [t for t in targets if t.erasure_id is None]
    # The ingest queues' dead letters that hold the subject's value as JSON writes it (control schema).
    needles = sorted({json.dumps(value).encode(), json.dumps(value, ensure_ascii=False).encode()})
    dead = store.queue_dead_letters()
    held = dead.holding(erasure.tenant_id, needles)
    result = ErasureResult(
        erasure.tenant_id, kind, matched=len(targets), already_erased=len(targets) - len(pending), dry_run=dry_run,
        event_ids=[t.event_id for t in pending], dead_letters=held,
    )  # fmt: skip
    if dry_run:
        return result
    if pending or held:
        erasure_id = uuid4()
        ids = [t.event_id for t in pending]
        record = {
            "erasureId": str(erasure_id),
            "subject": {"kind": kind, "sha256": subject_digest(kind, value)},
            "mode": "whole payload",
            "events": len(pending),
            "eventIds": [str(i) for i in ids],
            "archived": sum(1 for t in pending if t.blob_ref and t.blob_ref.startswith("cold:")),
            "deadLetters": held,
            "requestedBy": requested_by,
            "reason": reason,
        }
        event = maintenance_record(
            EventType.PAYLOADS_ERASED, record, by=requested_by, source=SOURCE, event_id=erasure_id
        )
        scrubs = [_scrub_traces(ids)]
        if kind == "workflowInstance":
            scrubs.append(_scrub_instance(value))
        result.erased, result.erasure_id = erasure.erase(pending, erasure_id, event, scrubs), erasure_id
        # After the tenant's transaction (the control schema may be in another database): asked again, the
        # same erasure finds any it could not empty and records them under a new erasure.
        result.dead_letters = dead.erase(erasure.tenant_id, needles, erasure_id)
        log.info("erasure %s of tenant %s: %d event(s) and %d dead letter(s) of a %s",
                 erasure_id, erasure.tenant_id, result.erased, result.dead_letters, kind)  # fmt: skip
    # Large payloads' blobs go after the commit; asked again (the same erasure), a delete that failed is retried.
    erased_now = [t if t.erasure_id is not None else replace(t, erasure_id=result.erasure_id) for t in targets]
    payloads = store.payloads
    if payloads is not None:
        for ref in erasure.unreferenced_blobs(erased_now):
            payloads.delete(ref)
            result.blobs_deleted += 1
    return result
