"""The names in a tenant's schema, defined once: its tables, its sequence, and the column orders every
statement is built from. The migrations (`migrations/tenant/*.sql`) create what is named here.

Statements are rendered once per schema and cached (`lru_cache` in each module), so building them from
these tuples costs nothing on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from psycopg import sql

EVENTS = "events"
EVENT_IDS = "event_ids"
STREAMS = "streams"
FEED_CHECKPOINTS = "feed_checkpoints"
FEED_DEAD_LETTERS = "feed_dead_letters"
VIEW_CHECKPOINTS = "view_checkpoints"
PAYLOAD_PROBLEMS = "payload_problems"
GLOBAL_POSITION_SEQUENCE = "global_position_seq"
ENSURE_PARTITION = "ensure_partition"
TENANTS = "tenants"
REPLAY_ACTIVE = "replay_active"
"""Tenants with replay jobs to drive, in the control schema."""
ALERTS_ACTIVE = "alerts_active"
"""Tenants with an open incident or notifications to send, in the control schema."""
ALERT_REPORTS = "alert_reports"
"""The weekly summary's sends, one row per week, in the control schema."""
QUEUE_DEAD_LETTERS = "queue_dead_letters"
"""Messages taken off the ingest queues' poison queues, in the control schema."""
"""The registry's table, in the control schema."""


def table(schema: str, name: str) -> sql.Identifier:
    """`schema.name`, quoted: the only way a table reaches a statement."""
    return sql.Identifier(schema, name)


# The events table's columns with the type each is written as, in the order every INSERT and COPY of an
# event writes them.
EVENT_COLUMN_TYPES: Mapping[str, str] = {
    "global_position": "int8",
    "stream_id": "text",
    "sequence_number": "int8",
    "event_id": "uuid",
    "event_type": "text",
    "payload": "bytea",
    "payload_sha256": "bytea",
    "payload_size": "int4",
    "payload_json": "jsonb",
    "content_type": "text",
    "workflow_id": "text",
    "workflow_instance_id": "text",
    "user_id": "text",
    "correlation_id": "text",
    "causation_id": "text",
    "source_system": "text",
    "blob_ref": "text",
    "recorded_at": "timestamptz",
}
EVENT_WRITE_COLUMNS: tuple[str, ...] = tuple(EVENT_COLUMN_TYPES)

EVENT_METADATA_COLUMNS: tuple[str, ...] = (
    "content_type",
    "workflow_id",
    "workflow_instance_id",
    "user_id",
    "correlation_id",
    "causation_id",
    "source_system",
    "blob_ref",
)
"""The columns written as the event came (or, for `blob_ref`, as its payload was placed), in the order
of `EVENT_WRITE_COLUMNS`: every append path binds them from one tuple (`append_events._metadata`)."""

# `RecordedEvent`'s fields, in its field order. The payload comes back as the stored bytes: nothing is
# decoded, which keeps reads close to a raw SELECT. The transaction id is the all-stream's order key.
_RECORDED_EVENT_FIELDS: Mapping[str, str] = {
    "global_position": "global_position",
    # Named apart from the xid8 column, so that an ORDER BY transaction_id is never on this bigint.
    "transaction_id": "transaction_id::text::bigint AS transaction_number",
    "stream_id": "stream_id",
    "sequence_number": "sequence_number",
    "event_id": "event_id",
    "event_type": "event_type",
    "payload": "payload",
    "payload_sha256": "payload_sha256",
    "payload_size": "payload_size",
    "blob_ref": "blob_ref",
    "content_type": "content_type",
    "workflow_id": "workflow_id",
    "workflow_instance_id": "workflow_instance_id",
    "user_id": "user_id",
    "correlation_id": "correlation_id",
    "causation_id": "causation_id",
    "source_system": "source_system",
    "recorded_at": "recorded_at",
}

# `FeedEntry`'s fields: ids and positions only (the feed never carries payloads).
_FEED_ENTRY_FIELDS: Mapping[str, str] = {
    name: _RECORDED_EVENT_FIELDS[name]
    for name in (
        "global_position",
        "transaction_id",
        "stream_id",
        "sequence_number",
        "event_id",
        "event_type",
        "workflow_id",
        "workflow_instance_id",
        "recorded_at",
    )
}


def select_list(fields: Mapping[str, str], alias: str | None = None) -> str:
    """The SELECT list of `fields` (name -> expression over the events table), qualified by `alias`."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + expression for expression in fields.values())


def columns(names: Iterable[str]) -> str:
    return ", ".join(names)


RECORDED_EVENT_COLUMNS = select_list(_RECORDED_EVENT_FIELDS, "e")
"""The SELECT list (over `events AS e`) that `RecordedEvent._make` reads. An erasure's columns are left out of
it: reads of many events are the hot path, and only a redacted event (rare) needs them; they are read for the
events of an HTTP answer, and when a payload does not match its recorded hash (`TenantEvents.payload_of`)."""
REDACTION_COLUMNS = "e.erasure_id, e.redacted_sha256"
"""An `ErasureMark`'s columns."""
FEED_ENTRY_COLUMNS = select_list(_FEED_ENTRY_FIELDS, "e")
"""The SELECT list (over `events AS e`) that `FeedEntry._make` reads."""
