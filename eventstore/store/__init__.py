"""The only part of the package that talks to PostgreSQL."""

from eventstore.store.event_store import EventStore
from eventstore.store.streams import (
    AUDIT_STREAM_ID,
    MAX_INSTANCE_ID_LENGTH,
    NO_CONTROL_CHARACTERS,
    instance_stream_id,
    validate_instance_id,
)
from eventstore.store.tenant_events import TenantEvents

__all__ = [
    "AUDIT_STREAM_ID",
    "MAX_INSTANCE_ID_LENGTH",
    "NO_CONTROL_CHARACTERS",
    "EventStore",
    "TenantEvents",
    "instance_stream_id",
    "validate_instance_id",
]
