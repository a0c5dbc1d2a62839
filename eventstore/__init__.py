"""eventstore: the audit log, history and change feed for workflow engines on Azure."""

from eventstore.errors import (
    AppendOnlyViolation,
    ConcurrencyConflict,
    DuplicateEventId,
    EventStoreError,
    InvalidEventType,
    InvalidInput,
    InvalidTenantId,
    PayloadIntegrityError,
    PayloadMissing,
    PayloadTooLarge,
    StoreUnavailable,
    UnknownTenant,
)
from eventstore.event_types import EventType
from eventstore.models import (
    START,
    AllStreamPage,
    AppendResult,
    Checkpoint,
    ExpectedVersion,
    InstanceState,
    NewEvent,
    RecordedEvent,
    StreamState,
)
from eventstore.settings import Settings
from eventstore.store import AUDIT_STREAM_ID, EventStore, TenantEvents, instance_stream_id

__all__ = [
    "AUDIT_STREAM_ID",
    "START",
    "AllStreamPage",
    "AppendOnlyViolation",
    "AppendResult",
    "Checkpoint",
    "ConcurrencyConflict",
    "DuplicateEventId",
    "EventStore",
    "EventStoreError",
    "EventType",
    "ExpectedVersion",
    "InstanceState",
    "InvalidEventType",
    "InvalidInput",
    "InvalidTenantId",
    "NewEvent",
    "PayloadIntegrityError",
    "PayloadMissing",
    "PayloadTooLarge",
    "RecordedEvent",
    "Settings",
    "StoreUnavailable",
    "StreamState",
    "TenantEvents",
    "UnknownTenant",
    "instance_stream_id",
]
