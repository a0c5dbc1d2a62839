"""Erasure (GDPR): a data subject's personal data removed everywhere the store keeps it, through the
maintenance path, and recorded (docs/retention.md, "Erasure").

Three subjects. A workflow instance (every event of its stream, and the received messages that name it)
and a user id (every event recorded with it) are erased **whole**: an instance's or a user's payloads are
about that instance or user, and a whole payload goes without trusting that a list of paths found every
place the data sits. A value at JSON paths across event types (an e-mail address in triggers, say) is
**redacted in place**: at each path where the payload holds exactly that value, it is replaced by the
marker `erased:<erasure id>`, and the rest of the payload stays.

Where the data lives, and what happens to it:
- the payload bytes and the JSONB copy in each row: cleared (whole), or rewritten (redaction); the row, its
  metadata and the original hash stay;
- a payload archived to a cold segment: its data key, kept only in the row, is destroyed (crypto-shredding);
  a redacted one comes back to the row (or a hot blob), and the next retention run archives it again. One in
  the Archive tier must be rehydrated to be read: the erasure starts that and says what is pending;
- a large payload's blob in the hot container: deleted after the commit when no other row points at it;
- the views: the executions view's copies (step inputs, outputs, errors) of the erased events are cleared
  (or redacted) and their executions recomputed; the instances view's context and last error likewise;
- the ingest queues' dead letters whose body holds the value: emptied;
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

from eventstore.errors import InvalidInput, PayloadArchived, PayloadIntegrityError
from eventstore.event_types import EventType
from eventstore.json_paths import JsonPath, redact, redact_everywhere
from eventstore.models import RecordedEvent
from eventstore.payload_json import parse_strict, wants_json_copy
from eventstore.retention.records import maintenance_record
from eventstore.store import ErasureRaced, ErasureTarget, EventStore, Redaction, Scrub, ViewWriter, is_cold
from eventstore.views import traces
from eventstore.views.instances import TABLES as INSTANCE_TABLES

log = logging.getLogger(__name__)

SOURCE = "eventstore-erasure"
ERASED_MARKER_PREFIX = "erased:"
"""What a redacted value becomes: `erased:<erasure id>`."""
SubjectKind = Literal["workflowInstance", "user", "jsonValue"]

MAX_OFFLOADED_READS = 2000
"""Payloads kept in Blob or cold storage one redaction may read (they have no JSONB copy to search, so each is
fetched and opened); a larger scope is refused with the way to narrow it (event types, a time range)."""
RACE_RETRIES = 3


@dataclass(frozen=True)
class ValueSubject:
    """A value at JSON paths: redacted in place wherever a payload holds exactly it at one of the paths."""

    value: str
    paths: tuple[JsonPath, ...]
    event_types: tuple[str, ...] = ()


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
    pending: int = 0
    """Archived payloads in the Archive tier that may hold the value: their segments are being rehydrated, and
    the same erasure asked once they are back (hours) redacts them."""
    unreadable: int = 0
    """Payloads that could not be read to look for the value (missing or altered in Blob storage)."""


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
    needles = _needles(value)
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


def _needles(value: str) -> list[bytes]:
    """The value as JSON writes it (both ways of writing non-ASCII), to find it in stored JSON text."""
    return sorted({json.dumps(value).encode(), json.dumps(value, ensure_ascii=False).encode()})


def _redacted_text(text: str | None, value: str, marker: str) -> str | None:
    """A view's JSON text with every string equal to `value` replaced (None: nothing to replace)."""
    if text is None or not any(n.decode() in text for n in _needles(value)):
        return None
    try:
        document, count = redact_everywhere(json.loads(text), value, marker)
    except ValueError:
        return text.replace(value, marker)
    return json.dumps(document, ensure_ascii=False) if count else None


def _redact_traces(event_ids: list[UUID], value: str, marker: str) -> Scrub:
    def scrub(writer: ViewWriter) -> None:
        rows = writer.execute(
            "SELECT event_id, execution_id, data, error FROM {facts} WHERE event_id = ANY(%s)", [event_ids]
        )
        touched = set()
        for event_id, execution_id, data, error in rows:
            new_data = _redacted_text(data, value, marker)
            new_error = error.replace(value, marker) if error and value in error else None
            if new_data is None and new_error is None:
                continue
            writer.execute(
                "UPDATE {facts} SET data = coalesce(%s, data), error = coalesce(%s, error) WHERE event_id = %s",
                [new_data, new_error, event_id],
            )
            touched.add(execution_id)
        if touched:
            traces.rewrite_executions(writer, touched)

    return traces.TABLES, scrub


def _redact_instances(instance_ids: list[str], value: str, marker: str) -> Scrub:
    def scrub(writer: ViewWriter) -> None:
        rows = writer.execute(
            "SELECT workflow_instance_id, context, last_error FROM {instances} WHERE workflow_instance_id = ANY(%s)",
            [instance_ids],
        )
        for instance_id, context, last_error in rows:
            new_context = _redacted_text(context, value, marker)
            new_error = last_error.replace(value, marker) if last_error and value in last_error else None
            if new_context is not None or new_error is not None:
                writer.execute(
                    "UPDATE {instances} SET context = coalesce(%s, context), last_error = coalesce(%s, last_error)"
                    " WHERE workflow_instance_id = %s",
                    [new_context, new_error, instance_id],
                )

    return INSTANCE_TABLES, scrub


def _redacted(payload: bytes, subject: ValueSubject, marker: str) -> bytes | None:
    """The payload with the value replaced at the subject's paths, or None when it holds the value at none."""
    try:
        document = parse_strict(payload)
    except ValueError:
        return None  # not JSON after all: it has no paths
    total = 0
    for path in subject.paths:
        document, count = redact(document, path, subject.value, marker)
        total += count
    if not total:
        return None
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _read_and_redact(
    store: EventStore, tenant_id: str, candidates: list[tuple[RecordedEvent, bytes]], subject: ValueSubject, marker: str
) -> tuple[list[Redaction], set[UUID], int]:
    """Each candidate read (from its row, Blob or cold storage) and redacted; with the Archive tier's events
    (whose segments the reads started rehydrating) and how many could not be read."""
    events = store.tenant(tenant_id)
    limit = store.settings.inline_payload_limit
    redactions: list[Redaction] = []
    pending: set[UUID] = set()
    unreadable = 0
    for event, served in candidates:
        try:
            payload = event.payload if event.payload is not None else events.payload_of(event)
        except PayloadArchived:
            pending.add(event.event_id)
            continue
        except PayloadIntegrityError:
            unreadable += 1
            continue
        new = _redacted(payload, subject, marker)
        if new is None:
            continue
        large = len(new) > limit and store.payloads is not None
        json_copy = not large and wants_json_copy(new, event.content_type)
        redactions.append(Redaction(event, new, None, json_copy=json_copy, served=served))
    return redactions, pending, unreadable


def redact_value(
    store: EventStore,
    tenant_id: str,
    subject: ValueSubject,
    *,
    reason: str,
    requested_by: str,
    dry_run: bool = False,
) -> ErasureResult:
    """Redact `subject.value` at `subject.paths` in every payload of the tenant that holds it there; with
    `dry_run`, only say which. A payload changed under it (the archiver moved it) is read again."""
    for attempt in range(RACE_RETRIES):
        try:
            return _redact_value(store, tenant_id, subject, reason=reason, requested_by=requested_by, dry_run=dry_run)
        except ErasureRaced:
            if attempt == RACE_RETRIES - 1:
                raise
            log.info("redaction in tenant %s raced with another change; reading again", tenant_id)
    raise AssertionError("unreachable")


def _redact_value(
    store: EventStore, tenant_id: str, subject: ValueSubject, *, reason: str, requested_by: str, dry_run: bool
) -> ErasureResult:
    erasure = store.erasure(tenant_id)
    settings = store.settings
    filters = [f for path in subject.paths for f in path.postgres_filters(subject.value)]
    inline = erasure.value_candidates(filters, subject.event_types, offloaded=False)
    offloaded = erasure.value_candidates([], subject.event_types, offloaded=True)
    if len(offloaded) > MAX_OFFLOADED_READS:
        raise InvalidInput(
            f"{len(offloaded)} payloads of this scope are kept in Blob or cold storage and must each be read to "
            f"look for the value; one erasure reads at most {MAX_OFFLOADED_READS}: narrow it with eventTypes",
            field="subject.jsonValue.eventTypes",
        )
    erasure_id = uuid4()
    marker = f"{ERASED_MARKER_PREFIX}{erasure_id}"
    redactions, pending, unreadable = _read_and_redact(store, tenant_id, inline + offloaded, subject, marker)
    result = ErasureResult(
        erasure.tenant_id, "jsonValue", matched=len(redactions), already_erased=0, dry_run=dry_run,
        event_ids=[r.event.event_id for r in redactions], pending=len(pending), unreadable=unreadable,
    )  # fmt: skip
    needles = _needles(subject.value)
    dead = store.queue_dead_letters()
    result.dead_letters = dead.holding(erasure.tenant_id, needles)
    if dry_run or not (redactions or result.dead_letters):
        return result
    payloads = store.payloads
    placed = []
    for r in redactions:
        ref = None
        if len(r.payload) > settings.inline_payload_limit and payloads is not None:
            ref = payloads.put(erasure.placement.container_name, r.payload, hashlib.sha256(r.payload).digest())
        placed.append(replace(r, blob_ref=ref))
    ids = [r.event.event_id for r in placed]
    record = {
        "erasureId": str(erasure_id),
        "subject": {"kind": "jsonValue", "sha256": subject_digest("jsonValue", subject.value)},
        "mode": "redaction",
        "paths": [p.text for p in subject.paths],
        "eventTypes": list(subject.event_types),
        "marker": marker,
        "events": len(placed),
        "eventIds": [str(i) for i in ids],
        "archived": sum(1 for r in placed if is_cold(r.event.blob_ref)),
        "pendingArchived": len(pending),
        "deadLetters": result.dead_letters,
        "requestedBy": requested_by,
        "reason": reason,
    }
    event = maintenance_record(EventType.PAYLOADS_ERASED, record, by=requested_by, source=SOURCE, event_id=erasure_id)
    instance_ids = sorted({r.event.workflow_instance_id for r in placed if r.event.workflow_instance_id})
    scrubs = [_redact_traces(ids, subject.value, marker), _redact_instances(instance_ids, subject.value, marker)]
    result.erased = erasure.redact(placed, erasure_id, event, scrubs) if placed else 0
    if not placed:  # only dead letters held it: the record goes on its own
        erasure.erase([], erasure_id, event, [])
    result.erasure_id = erasure_id
    result.dead_letters = dead.erase(erasure.tenant_id, needles, erasure_id)
    # The originals' hot blobs go after the commit (a redacted large payload has a blob of its own).
    if payloads is not None:
        old = [r.event.blob_ref for r in placed if r.event.blob_ref and not is_cold(r.event.blob_ref)]
        for ref in erasure.blobs_unreferenced([str(o) for o in old]):
            payloads.delete(ref)
            result.blobs_deleted += 1
    log.info("erasure %s of tenant %s: %d payload(s) redacted, %d pending rehydration, %d dead letter(s)",
             erasure_id, erasure.tenant_id, result.erased, result.pending, result.dead_letters)  # fmt: skip
    return result
