"""The change feed's publisher: for each tenant, the all-stream after each sink's checkpoint, as slim
CloudEvents, in batches, the checkpoint moved only after the sink took the batch.

- One publisher per tenant at a time: a session-level advisory lock (`TenantEvents.feed_lock`). A run
  that finds it taken does nothing: the holder publishes what is there.
- Each sink has its own checkpoint and drains on its own thread, so a slow or broken sink never holds
  back the others.
- At least once: a publisher killed between a delivery and its checkpoint sends that batch again.
  Subscribers dedupe on the CloudEvent `id`. Each stream's events go out in sequence order.
- Failures (see `sinks`): 413 splits the batch; another 4xx splits it until the refused events are
  alone, and those go to the dead letters; 5xx and timeouts are retried with backoff (tenacity) for up
  to `feed_retry_seconds`, then the sink is held (checkpoint unchanged, error recorded) until the next run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

from eventstore.errors import (
    BatchTooLarge,
    EventsRefused,
    FeedDeliveryError,
    SinkMisconfigured,
    SinkUnavailable,
    UnknownTenant,
)
from eventstore.feed.cloudevents import to_cloudevent
from eventstore.feed.sinks import Batch, Sink, encode
from eventstore.models import Checkpoint
from eventstore.settings import Settings
from eventstore.store import EventStore
from eventstore.store.feed_checkpoints import DeadLetter
from eventstore.store.read_feed import FeedEntry
from eventstore.store.tenant_events import TenantEvents

log = logging.getLogger(__name__)


@dataclass
class SinkRun:
    """What one run did for one sink of one tenant."""

    sink: str
    checkpoint: Checkpoint
    published: int = 0
    dead_lettered: int = 0
    requests: int = 0
    caught_up: bool = False
    waiting: bool = False
    """Caught up with what may be read, but newer events wait behind an older open transaction."""
    error: str | None = None


@dataclass
class TenantRun:
    tenant_id: str
    locked: bool
    """False: another publisher held the tenant's lock, and this run did nothing."""
    sinks: list[SinkRun] = field(default_factory=list)

    @property
    def published(self) -> int:
        return sum(s.published for s in self.sinks)

    @property
    def waiting(self) -> bool:
        return any(s.waiting for s in self.sinks)


class FeedPublisher:
    """Publishes tenants' all-streams to `sinks`. Thread-safe: the timer and the nudge share one."""

    def __init__(
        self,
        store: EventStore,
        sinks: Sequence[Sink],
        *,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`settings` (default: the store's) gives the batch limits, retry patience and type prefix."""
        settings = settings or store.settings
        self.store = store
        self.sinks = list(sinks)
        self.type_prefix = settings.feed_type_prefix
        self.batch_events = settings.feed_batch_events
        self.batch_bytes = settings.feed_batch_bytes
        self.retry_seconds = settings.feed_retry_seconds
        self.run_seconds = settings.feed_run_seconds
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=max(1, 4 * len(self.sinks)), thread_name_prefix="feed-sink")

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        for sink in self.sinks:
            sink.close()

    def publish_all(self) -> list[TenantRun]:
        """One run over every registered tenant (the timer's job)."""
        runs = []
        for placement in self.store.tenants():
            try:
                runs.append(self.publish_tenant(placement.tenant_id))
            except UnknownTenant:
                continue
        return runs

    def publish_tenant(
        self, tenant_id: str, *, retry_seconds: float | None = None, run_seconds: float | None = None
    ) -> TenantRun:
        """Publish what the tenant's sinks have not taken yet, unless another publisher is at it."""
        tenant = self.store.tenant(tenant_id)
        retry = self.retry_seconds if retry_seconds is None else retry_seconds
        deadline = self._clock() + (self.run_seconds if run_seconds is None else run_seconds)
        with tenant.feed_lock() as locked:
            if not locked:
                return TenantRun(tenant.tenant_id, locked=False)
            if len(self.sinks) == 1:
                runs = [self._drain(tenant, self.sinks[0], retry, deadline)]
            else:
                futures = [self._executor.submit(self._drain, tenant, s, retry, deadline) for s in self.sinks]
                runs = [f.result() for f in futures]
        return TenantRun(tenant.tenant_id, locked=True, sinks=runs)

    # one sink

    def _drain(self, tenant: TenantEvents, sink: Sink, retry_seconds: float, deadline: float) -> SinkRun:
        checkpoint = tenant.feed_checkpoint(sink.name)
        run = SinkRun(sink.name, checkpoint)
        try:
            while True:
                entries = tenant.read_feed(run.checkpoint, self.batch_events)
                if not entries:
                    run.caught_up = True
                    run.waiting = tenant.feed_waiting(run.checkpoint)
                    break
                for batch_entries, batch in self._batches(tenant, entries):
                    self._deliver(tenant, sink, batch_entries, batch, retry_seconds, run)
                    run.checkpoint = tenant.save_feed_checkpoint(sink.name, batch_entries[-1].checkpoint)
                if self._clock() >= deadline:
                    break
        except (SinkUnavailable, SinkMisconfigured) as exc:
            run.error = str(exc)
            log.warning("feed: tenant %s, %s held at %s: %s", tenant.tenant_id, sink.name, run.checkpoint, exc)
            tenant.record_feed_failure(sink.name, str(exc))
        return run

    def _batches(self, tenant: TenantEvents, entries: list[FeedEntry]) -> list[tuple[list[FeedEntry], Batch]]:
        """Split a page into batches under the byte limit (Event Grid: 1 MB per request)."""
        out: list[tuple[list[FeedEntry], Batch]] = []
        chunk: list[FeedEntry] = []
        events: list[dict[str, object]] = []
        encoded: list[bytes] = []
        size = 2
        for entry in entries:
            event = to_cloudevent(tenant.tenant_id, entry, self.type_prefix)
            data = encode(event)
            if chunk and size + len(data) + 2 > self.batch_bytes:
                out.append((chunk, Batch(events, encoded)))
                chunk, events, encoded, size = [], [], [], 2
            chunk.append(entry)
            events.append(event)
            encoded.append(data)
            size += len(data) + 2
        if chunk:
            out.append((chunk, Batch(events, encoded)))
        return out

    def _deliver(
        self,
        tenant: TenantEvents,
        sink: Sink,
        entries: list[FeedEntry],
        batch: Batch,
        retry_seconds: float,
        run: SinkRun,
    ) -> None:
        """Deliver or dead-letter every event of the batch, in order; raise when the sink must be held."""
        try:
            if batch.size > self.batch_bytes:
                raise BatchTooLarge(sink.name, None, f"{batch.size} bytes is over the {self.batch_bytes} limit")
            self._send(sink, batch, retry_seconds, run)
            run.published += len(entries)
        except (BatchTooLarge, EventsRefused) as exc:
            if len(entries) > 1:
                middle = len(entries) // 2
                first, second = batch.halves()
                self._deliver(tenant, sink, entries[:middle], first, retry_seconds, run)
                self._deliver(tenant, sink, entries[middle:], second, retry_seconds, run)
                return
            log.error("feed: tenant %s, %s refused event %s: %s", tenant.tenant_id, sink.name, entries[0].event_id, exc)
            tenant.dead_letter(sink.name, [DeadLetter(entries[0], exc.status, exc.reason)])
            run.dead_lettered += 1

    def _send(self, sink: Sink, batch: Batch, retry_seconds: float, run: SinkRun) -> None:
        retrying = Retrying(
            retry=retry_if_exception_type(SinkUnavailable),
            stop=stop_after_delay(retry_seconds),
            wait=wait_random_exponential(multiplier=0.05, max=5.0),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                run.requests += 1
                try:
                    sink.send(batch)
                except FeedDeliveryError as exc:
                    if isinstance(exc, SinkUnavailable):
                        log.info("feed: %s: %s (will retry)", sink.name, exc)
                    raise
