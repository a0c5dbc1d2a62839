"""RFC 9457 problem details: every error an HTTP function answers, mapped from `eventstore.errors` once.

`answers_problems` wraps a handler so that any exception becomes `application/problem+json` with the
status below. Handlers parse and validate everything before their single store call, and an append is
atomic, so a request answered with a problem has stored nothing.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func
from pydantic import ValidationError

from eventstore.errors import (
    ConcurrencyConflict,
    DuplicateEventId,
    InvalidEventType,
    InvalidInput,
    InvalidTenantId,
    OwnerRequired,
    PayloadArchived,
    PayloadErased,
    PayloadIntegrityError,
    PayloadMissing,
    PayloadTooLarge,
    RouterNotConfigured,
    StoreUnavailable,
    UnknownEvent,
    UnknownInstance,
    UnknownSequence,
    UnknownTenant,
    UnsupportedContentType,
    ViewBehind,
)
from eventstore.http.metrics import COUNTERS, HTTP_PROBLEMS
from eventstore.models import invalid_input_from
from eventstore.settings import Settings
from eventstore.store import ConfirmationRequired, NothingToReplay, ReplayOverlap, UnknownDeadLetter, UnknownReplayJob

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:eventstore:problem:"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProblemKind:
    status: int
    title: str
    slug: str

    @property
    def type(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.slug


class HttpProblem(Exception):
    """A problem that only exists at the HTTP level (an unknown route, a tenant placed elsewhere...)."""

    def __init__(
        self, status: int, title: str, detail: str, *, slug: str, extensions: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.kind = ProblemKind(status, title, slug)
        self.detail = detail
        self.extensions = dict(extensions or {})


# Most specific first: the first class an exception is an instance of decides its status.
PROBLEM_KINDS: tuple[tuple[type[BaseException], ProblemKind], ...] = (
    (UnsupportedContentType, ProblemKind(415, "Unsupported Media Type", "unsupported-content-type")),
    (PayloadTooLarge, ProblemKind(413, "Content Too Large", "payload-too-large")),
    (InvalidEventType, ProblemKind(400, "Unknown event type", "invalid-event-type")),
    (NothingToReplay, ProblemKind(422, "Nothing to replay", "nothing-to-replay")),
    (InvalidTenantId, ProblemKind(400, "Invalid tenant id", "invalid-tenant-id")),
    (InvalidInput, ProblemKind(400, "Invalid request", "invalid-input")),
    (ValidationError, ProblemKind(400, "Invalid request", "invalid-input")),
    (UnknownTenant, ProblemKind(404, "Unknown tenant", "unknown-tenant")),
    (UnknownInstance, ProblemKind(404, "Unknown workflow instance", "unknown-instance")),
    (UnknownEvent, ProblemKind(404, "Unknown event", "unknown-event")),
    (UnknownSequence, ProblemKind(404, "Unknown sequence number", "unknown-sequence")),
    (ConcurrencyConflict, ProblemKind(409, "Concurrency conflict", "concurrency-conflict")),
    (DuplicateEventId, ProblemKind(409, "Duplicate event id", "duplicate-event-id")),
    (ConfirmationRequired, ProblemKind(409, "Confirmation required", "confirmation-required")),
    (ReplayOverlap, ProblemKind(409, "Already being replayed", "replay-overlap")),
    (RouterNotConfigured, ProblemKind(409, "No replay router", "router-not-configured")),
    (UnknownReplayJob, ProblemKind(404, "Unknown replay job", "unknown-replay-job")),
    (UnknownDeadLetter, ProblemKind(404, "Unknown dead letter", "unknown-dead-letter")),
    # The deployed app holds no owner credentials: onboarding and migrations run from the command line.
    (OwnerRequired, ProblemKind(403, "Needs the database owner", "owner-required")),
    (StoreUnavailable, ProblemKind(503, "Service Unavailable", "store-unavailable")),
    (ViewBehind, ProblemKind(503, "View behind", "view-behind")),
    # The event is stored, its payload is gone for good (until restored): not the server failing now.
    (PayloadMissing, ProblemKind(410, "Payload missing", "payload-missing")),
    # Erased on purpose (GDPR): gone for good, and the answer says by which erasure.
    (PayloadErased, ProblemKind(410, "Payload erased", "payload-erased")),
    # Retention put the payload in the Archive tier: not an outage, and not gone; the read started its way back.
    (PayloadArchived, ProblemKind(409, "Payload archived", "payload-archived")),
    (PayloadIntegrityError, ProblemKind(500, "Stored payload failed its integrity check", "payload-integrity")),
)
INTERNAL_ERROR = ProblemKind(500, "Internal Server Error", "internal-error")


def kind_of(exc: BaseException) -> ProblemKind:
    if isinstance(exc, HttpProblem):
        return exc.kind
    for cls, kind in PROBLEM_KINDS:
        if isinstance(exc, cls):
            return kind
    return INTERNAL_ERROR


def _details(exc: BaseException, kind: ProblemKind) -> tuple[str, dict[str, Any]]:
    """The `detail` text and the extension members for `exc`."""
    if isinstance(exc, HttpProblem):
        return exc.detail, exc.extensions
    if isinstance(exc, ValidationError):
        exc = invalid_input_from(exc)
    if kind.status >= 500:
        # Never echo internals (DSNs, hosts, stack frames): they are logged instead.
        if isinstance(exc, StoreUnavailable):
            return "the store is unavailable; retry later", {}
        if isinstance(exc, ViewBehind):  # its own words: view names and positions, nothing internal
            return str(exc), {
                "view": exc.view,
                "minPosition": exc.min_position,
                "checkpoint": exc.checkpoint,
                "stopped": exc.stopped_reason is not None,
            }
        return "the request failed on the server; the cause has been logged", {}
    extensions: dict[str, Any] = {}
    if isinstance(exc, InvalidInput) and exc.field:
        extensions["field"] = exc.field
    if isinstance(exc, InvalidEventType):
        extensions["validEventTypes"] = list(exc.valid)
    if isinstance(exc, PayloadTooLarge):
        extensions.update(size=exc.size, limit=exc.limit)
    if isinstance(exc, UnsupportedContentType):
        extensions["accepted"] = list(exc.accepted)
    if isinstance(exc, ConcurrencyConflict):
        extensions["actualVersion"] = exc.actual_version
    if isinstance(exc, DuplicateEventId):
        extensions["eventId"] = str(exc.event_id)
    if isinstance(exc, UnknownSequence):
        extensions.update(field=exc.field, lastSequence=exc.last_sequence)
    if isinstance(exc, ConfirmationRequired):
        extensions.update(matched=exc.matched, limit=exc.limit)
    if isinstance(exc, ReplayOverlap):
        extensions["jobs"] = [str(j) for j in exc.jobs]
    if isinstance(exc, UnknownReplayJob):
        extensions["jobId"] = str(exc.job_id)
    if isinstance(exc, PayloadErased):
        extensions.update(
            eventId=str(exc.event_id), erasureId=str(exc.erasure_id),
            erasedAt=exc.erased_at.isoformat() if exc.erased_at else None, reason=exc.reason,
        )  # fmt: skip
    if isinstance(exc, PayloadArchived):
        extensions.update(
            eventId=str(exc.event_id), segment=exc.segment, rehydration=exc.status or "started",
            retryAfterSeconds=exc.retry_after_seconds,
        )  # fmt: skip
    if isinstance(exc, UnknownDeadLetter):
        extensions["deadLetterId"] = exc.letter_id
    if isinstance(exc, PayloadMissing):
        extensions["blobRef"] = exc.blob_ref
        if exc.event_id is not None:
            extensions["eventId"] = str(exc.event_id)
    return str(exc), extensions


def problem_body(exc: BaseException, instance: str | None = None) -> tuple[ProblemKind, dict[str, Any]]:
    kind = kind_of(exc)
    detail, extensions = _details(exc, kind)
    body: dict[str, Any] = {"type": kind.type, "title": kind.title, "status": kind.status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return kind, body


def problem_response(exc: BaseException, instance: str | None = None) -> func.HttpResponse:
    """The problem+json answer for `exc`."""
    kind, body = problem_body(exc, instance)
    headers = {"Content-Type": PROBLEM_CONTENT_TYPE, "Cache-Control": "no-store"}
    if kind.status == 503:
        headers["Retry-After"] = str(retry_after_seconds())
    elif isinstance(exc, PayloadArchived):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    COUNTERS.add(HTTP_PROBLEMS, status=str(kind.status))
    if isinstance(exc, ViewBehind):
        log.warning("%s answered %d: %s", instance, kind.status, exc)
    elif kind.status >= 500:
        log.error("%s answered %d: %s", instance, kind.status, exc, exc_info=exc)
    else:
        log.info("%s answered %d: %s", instance, kind.status, exc)
    return func.HttpResponse(
        json.dumps(body, ensure_ascii=False).encode("utf-8"),
        status_code=kind.status,
        headers=headers,
        mimetype=PROBLEM_CONTENT_TYPE,
    )


def retry_after_seconds() -> int:
    """EVENTSTORE_RETRY_AFTER_SECONDS, read once (`http` sits below the services, so it reads this setting
    itself: the same environment, the same value as the services' settings)."""
    try:
        return _configured_retry_after()
    except Exception:  # settings that do not load must not turn a 503 into a crash
        return int(Settings.model_fields["retry_after_seconds"].default)


@functools.cache
def _configured_retry_after() -> int:
    return Settings().retry_after_seconds


Handler = Callable[[func.HttpRequest], func.HttpResponse]


def _path_of(url: str) -> str | None:
    try:
        return urlsplit(url).path or None
    except ValueError:  # a host the client wrote oddly: the answer just names no instance
        return None


def answers_problems(handler: Handler) -> Handler:
    """Wrap `handler` so that every error it raises is answered as problem+json."""

    @functools.wraps(handler)
    def wrapped(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return handler(req)
        except Exception as exc:
            return problem_response(exc, _path_of(req.url))

    return wrapped
