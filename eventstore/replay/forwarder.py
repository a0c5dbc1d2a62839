"""The forwarder: one message of the replays queue names one job item; claim it, read the stored message
(its hash verified), mark it as a replay and hand it to the tenant's router. Sent: the item, its job's count
and the MessageReplayed event commit together. Not sent: the item goes back to pending with its error and
the time of its next attempt, and the job shows the error; never dropped.

Delivery to the router is at least once: a forwarder that dies after the router took a replay and before
it recorded it leaves the item claimed; when the claim runs out the driver queues it again and it is sent a
second time. The replay id and the original's idempotency key make that second delivery harmless to an
engine that skips what it already did (docs/replay.md).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, model_validator

from eventstore.errors import (
    EventStoreError,
    PayloadIntegrityError,
    RouterRefused,
    RouterUnavailable,
)
from eventstore.event_types import EventType
from eventstore.models import NewEvent
from eventstore.replay.requests import changed_event, plan_message
from eventstore.replay.router import Router, open_router
from eventstore.replay_wire import CompletedStep, ReplayDelivery, ReplayMarks
from eventstore.settings import Settings
from eventstore.store import EventStore, ReplayItemRow, TenantReplays
from eventstore.views import messages

log = logging.getLogger(__name__)


def claim_seconds(settings: Settings, tenant_id: str) -> float:
    """How long a forwarder holds an item while it sends it: longer than the worst case of one forward (the
    router's timeout, and four bounded calls to the database and storage around it), and no longer, so that a
    forwarder that died (the host killed) holds its items back for well under a minute by default."""
    configured = settings.replay_routers.get(tenant_id) or settings.replay_router
    router_timeout = max(configured.timeout, settings.dependency_timeout_seconds) if configured else 0.0
    return router_timeout + 4 * settings.dependency_timeout_seconds + CLAIM_MARGIN_SECONDS


CLAIM_MARGIN_SECONDS = 10.0
"""A batch's sends start within this long of its claim; the items it did not get to go back to pending."""


MAX_BATCH = 16
"""Items one message of the replays queue names at most: a queue message, a claim and a recording
transaction carry up to this many sends, instead of one each (docs/benchmarks.md, Replay)."""


class ForwardMessage(BaseModel):
    """One message of the replays queue: which items of which job to send, in order."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    tenant_id: str = Field(alias="tenantId")
    job_id: UUID = Field(alias="jobId")
    positions: tuple[Annotated[int, Field(ge=1)], ...] = Field(min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="before")
    @classmethod
    def _one_position(cls, data: Any) -> Any:
        # The first releases queued one item per message ({"position": n}); such a message may still wait.
        if isinstance(data, dict) and "position" in data and "positions" not in data:
            data = {**data, "positions": [data["position"]]}
            del data["position"]
        return data


def backoff(attempts: int, exc: Exception) -> float:
    """Seconds before the next attempt: the router's own Retry-After when it gave one; doubling from 2 s
    (to 5 minutes) while it is unavailable; from 30 s (to an hour) while it refuses, since someone has to
    change something first."""
    if isinstance(exc, RouterUnavailable) and exc.retry_after is not None:
        return min(max(exc.retry_after, 1.0), 3600.0)
    if isinstance(exc, RouterRefused | PayloadIntegrityError):
        return float(min(30.0 * 2 ** min(attempts, 7), 3600.0))
    return float(min(2.0 * 2 ** min(attempts, 8), 300.0))


def replayed_event(item: ReplayItemRow, target: str, tenant_id: str) -> NewEvent:
    payload = {
        "replayId": str(item.replay_id),
        "originalEventId": str(item.event_id),
        "jobId": str(item.job_id),
        "position": item.position,
        "target": target,
        "attempt": item.attempts + 1,
    }
    return NewEvent(
        event_id=uuid4(),
        event_type=EventType.MESSAGE_REPLAYED,
        payload=json.dumps(payload, separators=(",", ":")).encode(),
        correlation_id=str(item.event_id),
    )


class Forwarder:
    """Sends job items to their tenants' routers (one router client per tenant, kept open)."""

    def __init__(self, store: EventStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._routers: dict[str, Router] = {}

    def close(self) -> None:
        for router in self._routers.values():
            router.close()
        self._routers.clear()

    def _router(self, tenant_id: str) -> Router:
        router = self._routers.get(tenant_id)
        if router is None:
            router = self._routers[tenant_id] = open_router(self.settings, tenant_id)
        return router

    def forward(self, message: ForwardMessage) -> str:
        """Send the items `message` names, in order; `sent` (every one it could claim), `failed` (some held
        for their next attempt), or `skipped` (none waiting to be sent: already sent, cancelled, claimed by
        another forwarder, or the job not running)."""
        replays = self.store.replays(message.tenant_id)
        tenant_id = replays.tenant_id
        claim = claim_seconds(self.settings, tenant_id)
        items = replays.claim_many(message.job_id, message.positions, claim)
        if not items:
            return "skipped"
        claimed = time.monotonic()
        try:
            router = self._router(tenant_id)
        except EventStoreError as exc:  # no router for the tenant (any more): every item waits, with the error
            until = self._failed(replays, items[0], exc)
            replays.release_many(message.job_id, [item.position for item in items[1:]], until)
            return "failed"
        sent: list[tuple[ReplayItemRow, NewEvent]] = []
        failed = False
        held: list[ReplayItemRow] = []
        hold_until: datetime | None = None
        for index, item in enumerate(items):
            # A send starts only while the claim still has a whole forward's worth of time left (see
            # `claim_seconds`): one under way when the claim runs out could go twice.
            if time.monotonic() - claimed > CLAIM_MARGIN_SECONDS:
                held = items[index:]
                break
            try:
                router.send(self._delivery(tenant_id, item))
            except (RouterUnavailable, RouterRefused) as exc:  # the router's trouble: the rest of the batch waits
                hold_until, failed = self._failed(replays, item, exc), True
                held = items[index + 1 :]
                break
            except EventStoreError as exc:  # this item's trouble (its payload, a read): the others go on
                self._failed(replays, item, exc)
                failed = True
                continue
            sent.append((item, replayed_event(item, router.target, tenant_id)))
        if sent:
            finished = changed_event(message.job_id, "finished", by="replay", reason=None, counts=None)
            replays.mark_sent_many(message.job_id, sent, finished)
        if held:
            replays.release_many(message.job_id, [item.position for item in held], hold_until)
        return "failed" if failed else "sent"

    @staticmethod
    def _failed(replays: TenantReplays, item: ReplayItemRow, exc: Exception) -> datetime:
        """Hold `item` for its next attempt with its error (shown on the job); when that is."""
        wait = backoff(item.attempts, exc)
        log.warning(
            "replay %s (job %s, message %s) not sent, next attempt in %.0f s: %s",
            item.replay_id, item.job_id, item.event_id, wait, exc,
        )  # fmt: skip
        when = datetime.now(UTC) + timedelta(seconds=wait)
        replays.mark_failed(item, f"message {item.event_id}: {exc}", when)
        return when

    def _delivery(self, tenant_id: str, item: ReplayItemRow) -> ReplayDelivery:
        events = self.store.tenant(tenant_id)
        event = events.get_event(item.event_id)
        if event is None:  # a job's items are recorded messages: only erasure could take one away
            raise PayloadIntegrityError(f"message {item.event_id} is no longer stored")
        body = events.payload_of(event)  # the exact bytes, their SHA-256 verified
        row = messages.get_message(self.store.views(tenant_id), item.event_id)
        completed: list[CompletedStep] = []
        if row is not None:
            plan = plan_message(self.store, tenant_id, row)
            completed = [
                CompletedStep(
                    name=s.name or "",
                    idempotency_key=s.idempotency_key or "",
                    execution_id=s.execution_id or "",
                    step_id=s.step_id or "",
                )
                for s in plan.steps
                if s.action == "skip"
            ]
        marks = ReplayMarks(
            replay_id=item.replay_id,
            original_event_id=item.event_id,
            idempotency_key=(row.operation_id if row is not None and row.operation_id else str(item.event_id)),
            tenant_id=tenant_id,
            job_id=item.job_id,
            replay_of=row.latest_execution_id if row is not None else None,
            completed_steps=tuple(completed),
        )
        return ReplayDelivery(marks=marks, body=body, content_type=event.content_type)
