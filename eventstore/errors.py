"""One error hierarchy for the whole package.

psycopg errors are translated into these once, in `eventstore.store`; the HTTP layer maps them to
problem+json once. Callers never need to import psycopg to handle a failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID


class EventStoreError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidInput(EventStoreError, ValueError):
    """The caller sent something the store refuses. Nothing was written."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidTenantId(InvalidInput):
    """A tenant id that does not match the strict pattern (hex levels of 32, or a GUID)."""


class InvalidEventType(InvalidInput):
    """An event type outside `EventType`; the message lists the valid ones."""

    def __init__(self, value: object, valid: Sequence[str]) -> None:
        super().__init__(f"unknown event type {value!r}; valid types are: {', '.join(valid)}", field="event_type")
        self.value = value
        self.valid = tuple(valid)


class PayloadTooLarge(InvalidInput):
    """A payload over a size limit; `limit_name` is the setting that sets it, as an operator would type it."""

    def __init__(
        self, size: int, limit: int, *, field: str = "payload", limit_name: str = "EVENTSTORE_MAX_PAYLOAD_SIZE"
    ) -> None:
        what = "the request body" if field == "body" else field
        super().__init__(f"{what} is {size} bytes, over the limit of {limit} bytes ({limit_name})", field=field)
        self.size = size
        self.limit = limit
        self.limit_name = limit_name


class UnknownTenant(EventStoreError, LookupError):
    """A tenant that was never onboarded."""

    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"tenant {tenant_id} is not onboarded")
        self.tenant_id = tenant_id


class UnknownInstance(EventStoreError, LookupError):
    """A workflow instance with no events in this tenant."""

    def __init__(self, workflow_instance_id: str) -> None:
        super().__init__(f"workflow instance {workflow_instance_id!r} has no events")
        self.workflow_instance_id = workflow_instance_id


class UnknownSequence(EventStoreError, LookupError):
    """A sequence number past the end of an existing stream (the state at event 9 of a 5-event instance)."""

    def __init__(self, workflow_instance_id: str, sequence: int, last_sequence: int, *, field: str) -> None:
        super().__init__(
            f"{field} {sequence}: instance {workflow_instance_id!r} has no such event; its last is {last_sequence}"
        )
        self.field = field
        self.last_sequence = last_sequence


class UnknownEvent(EventStoreError, LookupError):
    """An event id that this tenant does not hold."""

    def __init__(self, event_id: UUID) -> None:
        super().__init__(f"event {event_id} is not stored for this tenant")
        self.event_id = event_id


class UnsupportedContentType(InvalidInput):
    """A body whose declared content type this endpoint does not take (HTTP 415)."""

    def __init__(self, content_type: str | None, accepted: Sequence[str]) -> None:
        shown = repr(content_type) if content_type else "no content type"
        super().__init__(f"{shown} is not accepted here; send one of: {', '.join(accepted)}", field="Content-Type")
        self.content_type = content_type
        self.accepted = tuple(accepted)


class ConcurrencyConflict(EventStoreError):
    """The stream's version did not match the expected version. Nothing was written."""

    def __init__(self, stream_id: str, expected: object, actual_version: int) -> None:
        shown = "no stream" if actual_version == 0 else f"version {actual_version}"
        super().__init__(f"stream {stream_id!r} is at {shown}, expected {expected}")
        self.stream_id = stream_id
        self.expected = expected
        self.actual_version = actual_version


class DuplicateEventId(EventStoreError):
    """An event id that is already stored with other content or at another position."""

    def __init__(self, event_id: object, reason: str) -> None:
        super().__init__(f"event {event_id} is already stored {reason}")
        self.event_id = event_id
        self.reason = reason


class DuplicateEventIdInBatch(DuplicateEventId):
    """One event id given to two events of the same append (a conflict between them, as with a stored one)."""

    def __init__(self, event_id: object, first: int, second: int) -> None:
        EventStoreError.__init__(self, f"event id {event_id} is given twice in one append: events {first} and {second}")
        self.event_id = event_id
        self.reason = "twice in one append"


class AppendOnlyViolation(EventStoreError):
    """An attempt to change or remove stored events outside the maintenance path."""


class PayloadIntegrityError(EventStoreError):
    """A stored payload is missing or no longer matches the SHA-256 recorded with its event."""


class PayloadMissing(PayloadIntegrityError):
    """The event is stored but its payload is gone from Blob storage: `blob_ref` names what was lost.

    Permanent until the blob is restored (a local Azurite killed soon after a write loses recent blobs);
    the event's metadata stays readable and the tenant's health lists it."""

    def __init__(self, blob_ref: str, event_id: object = None) -> None:
        of = f" of event {event_id}" if event_id is not None else ""
        super().__init__(f"the payload{of} is missing from Blob storage: {blob_ref} was not found")
        self.blob_ref = blob_ref
        self.event_id = event_id


class PayloadArchived(EventStoreError):
    """The payload was moved to the Archive access tier by retention: offline until its segment is
    rehydrated, which this read started (hours: up to 15 at standard priority). A later read succeeds."""

    def __init__(self, event_id: object, segment: str, status: str | None, retry_after_seconds: int) -> None:
        state = f" ({status})" if status else ""
        super().__init__(
            f"the payload of event {event_id} is in the Archive tier; rehydrating its segment {segment}{state} "
            f"has started: read it again in a few hours"
        )
        self.event_id, self.segment, self.status = event_id, segment, status
        self.retry_after_seconds = retry_after_seconds


class PayloadErased(EventStoreError):
    """The event's payload was removed by an erasure (GDPR): the event itself, its metadata and original hash
    stay; `erasure_id` names the erasure (its event in the tenant's maintenance stream)."""

    def __init__(
        self, event_id: object, erasure_id: object, erased_at: datetime | None, reason: str | None, by: str | None
    ) -> None:
        when = f" on {erased_at.isoformat()}" if erased_at else ""
        why = f": {reason}" if reason else ""
        super().__init__(f"the payload of event {event_id} was erased by erasure {erasure_id}{when}{why}")
        self.event_id, self.erasure_id, self.erased_at, self.reason, self.by = (
            event_id,
            erasure_id,
            erased_at,
            reason,
            by,
        )


class StoreUnavailable(EventStoreError):
    """The database could not be reached or failed in a way the caller may retry."""


class OwnerRequired(EventStoreError):
    """Work only the database owner may do (creating a tenant's schema, migrating) asked of an app that has no
    owner DSN, as deployed: it runs from the deploy script or a one-off job (`eventstore migrate`,
    `eventstore tenant onboard`). Asking again cannot help, so it is not a 503."""


class ViewBehind(EventStoreError):
    """A read asked for a view at least at a position (`minPosition`) the view has not applied yet: it is
    busy with a backlog (retry soon) or stopped at an event it cannot apply (`stopped_reason`; an operator
    must act, health shows it)."""

    def __init__(self, view: str, min_position: int, checkpoint: str, stopped_reason: str | None) -> None:
        why = f"it stopped at an event it cannot apply: {stopped_reason}" if stopped_reason else "it is catching up"
        super().__init__(f"the {view} view has not applied global position {min_position} yet; {why}")
        self.view, self.min_position = view, min_position
        self.checkpoint, self.stopped_reason = checkpoint, stopped_reason


class FeedDeliveryError(EventStoreError):
    """A change-feed sink did not take a batch. `status` is the HTTP status, or None (no answer)."""

    def __init__(self, sink: str, status: int | None, reason: str, *, retry_after: float | None = None) -> None:
        self.sink, self.status, self.reason, self.retry_after = sink, status, reason, retry_after
        super().__init__(f"{sink}: {status if status is not None else 'no answer'}: {reason}")


class BatchTooLarge(FeedDeliveryError):
    """413: the sink wants smaller requests; the batch is split."""


class EventsRefused(FeedDeliveryError):
    """A 4xx about the events themselves: they go to the dead letters and the feed moves on."""


class SinkUnavailable(FeedDeliveryError):
    """5xx, 408, 429, a timeout or no connection: retried with backoff, the checkpoint held."""


class SinkMisconfigured(FeedDeliveryError):
    """401/403/404/405/410/415, a redirect, a refused handshake, or every event of a batch refused alike:
    not the events' fault, so none is dead-lettered; the checkpoint is held until the sink is fixed."""


class ReplayError(EventStoreError):
    """A replay could not be sent or asked for."""


class RouterNotConfigured(ReplayError):
    """No replay router is configured for the tenant, nor a deployment-wide one."""

    def __init__(self, tenant_id: str) -> None:
        super().__init__(
            f"no replay router is configured for tenant {tenant_id}: set EVENTSTORE_REPLAY_ROUTERS__<tenant>__... "
            "or the deployment-wide EVENTSTORE_REPLAY_ROUTER__..."
        )
        self.tenant_id = tenant_id


class RouterUnavailable(ReplayError):
    """The router did not take the replay this time (no answer, a timeout, 408, 429, 5xx): retried later
    with backoff. `retry_after` is the router's own hint in seconds, when it gave one."""

    def __init__(self, target: str, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{target}: {reason}")
        self.target, self.reason, self.retry_after = target, reason, retry_after


class RouterRefused(ReplayError):
    """The router refused the replay (another 4xx, a missing queue, a message too large for it): held and
    retried with a longer backoff, shown in the job, until someone fixes the router or cancels."""

    def __init__(self, target: str, reason: str, *, status: int | None = None) -> None:
        super().__init__(f"{target}: {reason}")
        self.target, self.reason, self.status = target, reason, status
