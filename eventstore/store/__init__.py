"""The store: the only package that talks to PostgreSQL (and to Blob storage for large payloads).

This module is its front door: everything outside the store imports from `eventstore.store` only; the
modules inside (one operation per module, the schema's names in `schema`, the migrations) are private to
it, and a test holds everyone to that. Start with `EventStore(settings)`:

- `store.tenant(tenant_id)` -> `TenantEvents`: append to and read a tenant's streams, its all-stream,
  search, exact payloads.
- `store.feed(tenant_id)` -> `TenantFeed`: the change feed's checkpoints, health and dead letters;
  `feed.session(sink)` -> `FeedSession`, one publisher's locked hold on one sink.
- `store.views(tenant_id)` -> `TenantViews`: the views' checkpoints and reads of their tables;
  `views.session(view)` -> `ViewSession`, one runner's locked hold on one view.
- `store.replays(tenant_id)` -> `TenantReplays`: replay jobs and the delivery of their messages.
- `store.alerts(tenant_id)` -> `TenantAlerts`: incidents of the alert rules and the notifications outbox.
- `store.retention(tenant_id)` -> `TenantRetention`: payloads past retention and their move to cold segments.
- `store.erasure(tenant_id)` -> `TenantErasure`: a subject's events, and the transaction that erases them.
- `store.queue_dead_letters()` -> `QueueDeadLetters`: poison messages of the ingest queues, kept; the
  deployment's own alert outbox.
- `store.onboard_tenant`, `migrate`, `ensure_partitions`, `tenants`: the tenants themselves;
  `store.grant_login` and `create_principal`: the app's own database login.
"""

from eventstore.store.alert_outbox import AlertOutbox, Notice, OutboxRow
from eventstore.store.blob_payloads import BlobPayloads
from eventstore.store.cold_payloads import COLD_PREFIX, REHYDRATION_RETRY_SECONDS, ArchiveKeys, ColdRef, is_cold
from eventstore.store.event_store import EventStore
from eventstore.store.feed_checkpoints import DeadLetter, FeedDeadLetterRow, SinkState
from eventstore.store.logins import conninfo_parts, conninfo_with, create_principal
from eventstore.store.payload_problems import PayloadProblem
from eventstore.store.pending_work import PendingWork
from eventstore.store.queue_dead_letters import (
    DeadLetterMismatch,
    NewQueueDeadLetter,
    QueueDeadLetterRow,
    QueueDeadLetters,
    UnknownDeadLetter,
)
from eventstore.store.read_feed import FeedEntry, FeedPage, PendingStats, WritingTransaction
from eventstore.store.streams import (
    AUDIT_STREAM_ID,
    INSTANCE_PREFIX,
    MAINTENANCE_STREAM_ID,
    MAX_INSTANCE_ID_LENGTH,
    NO_CONTROL_CHARACTERS,
    instance_stream_id,
    validate_instance_id,
)
from eventstore.store.tenant_alerts import IncidentRow, TenantAlerts, WindowFigures
from eventstore.store.tenant_erasure import (
    ERASED_PREFIX,
    ErasureRaced,
    ErasureTarget,
    Redaction,
    Scrub,
    TenantErasure,
    is_erased,
)
from eventstore.store.tenant_events import TenantEvents
from eventstore.store.tenant_feed import FeedSession, TenantFeed
from eventstore.store.tenant_replays import (
    ConfirmationRequired,
    ItemCounts,
    NewReplayJob,
    NothingToReplay,
    ReplayItemRow,
    ReplayJobRow,
    ReplayOverlap,
    TenantReplays,
    UnknownReplayJob,
)
from eventstore.store.tenant_retention import ArchiveRaced, HeldPayload, RetentionFigures, TenantRetention
from eventstore.store.tenant_views import TenantViews, ViewSession, ViewState, ViewWriter, shadow_of

__all__ = [
    "AUDIT_STREAM_ID",
    "COLD_PREFIX",
    "ERASED_PREFIX",
    "INSTANCE_PREFIX",
    "MAINTENANCE_STREAM_ID",
    "MAX_INSTANCE_ID_LENGTH",
    "NO_CONTROL_CHARACTERS",
    "REHYDRATION_RETRY_SECONDS",
    "AlertOutbox",
    "ArchiveKeys",
    "ArchiveRaced",
    "BlobPayloads",
    "ColdRef",
    "ConfirmationRequired",
    "DeadLetter",
    "DeadLetterMismatch",
    "ErasureRaced",
    "ErasureTarget",
    "EventStore",
    "FeedDeadLetterRow",
    "FeedEntry",
    "FeedPage",
    "FeedSession",
    "HeldPayload",
    "IncidentRow",
    "ItemCounts",
    "NewQueueDeadLetter",
    "NewReplayJob",
    "NothingToReplay",
    "Notice",
    "OutboxRow",
    "PayloadProblem",
    "PendingStats",
    "PendingWork",
    "QueueDeadLetterRow",
    "QueueDeadLetters",
    "Redaction",
    "ReplayItemRow",
    "ReplayJobRow",
    "ReplayOverlap",
    "RetentionFigures",
    "Scrub",
    "SinkState",
    "TenantAlerts",
    "TenantErasure",
    "TenantEvents",
    "TenantFeed",
    "TenantReplays",
    "TenantRetention",
    "TenantViews",
    "UnknownDeadLetter",
    "UnknownReplayJob",
    "ViewSession",
    "ViewState",
    "ViewWriter",
    "WindowFigures",
    "WritingTransaction",
    "conninfo_parts",
    "conninfo_with",
    "create_principal",
    "instance_stream_id",
    "is_cold",
    "is_erased",
    "shadow_of",
    "validate_instance_id",
]
