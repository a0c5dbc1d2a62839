"""The change feed's publisher: for each tenant and sink, the all-stream after the sink's checkpoint, as
slim CloudEvents, in batches, the checkpoint moved only after the sink took (or refused) the batch.

- One publisher per tenant and sink at a time: a session-level advisory lock (`TenantFeed.session`).
  A drain that finds it taken does nothing: the holder publishes what is there.
- Each (tenant, sink) drains on its own worker from its own checkpoint under its own lock, so a slow or
  failing sink never holds back another sink, or another tenant.
- At least once: a publisher killed between a delivery and its checkpoint sends that batch again.
  Subscribers dedupe on the CloudEvent `id`. Each stream's events go out in sequence order.
- Failures (see `sinks`): 413 splits the batch; another 4xx splits it until the refused events are
  alone, and those go to the dead letters, in the same transaction as the checkpoint that passes them.
  A refusal that is plainly about the sink rather than the events (a whole batch refused alike, or
  single events refused again and again with nothing taken in between) holds the sink instead. 5xx and
  timeouts are retried with backoff (tenacity, honouring Retry-After) within `feed_retry_seconds` and
  the run's deadline; then the sink is held (checkpoint unchanged, error recorded) until the next run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_before_delay, wait_random_exponential

from eventstore.errors import (
    BatchTooLarge,
    EventsRefused,
    FeedDeliveryError,
    InvalidInput,
    SinkMisconfigured,
    SinkUnavailable,
)
from eventstore.feed.cloudevents import to_cloudevent
from eventstore.feed.sinks import Batch, Sink, encode
from eventstore.models import START, Checkpoint
from eventstore.settings import Settings
from eventstore.store import DeadLetter, EventStore, FeedEntry, FeedSession, PendingWork, TenantFeed
from eventstore.telemetry import FEED_PUBLISH_DURATION, timed

log = logging.getLogger(__name__)

# Single events refused in a row in one drain, nothing taken in between, before the refusals count as
# the sink's fault (held) rather than the events' (dead-lettered).
REFUSAL_STREAK_LIMIT = 3
# How long after a failure the nudge leaves a sink to the timer, which retries with full patience.
FAILING_QUIET_SECONDS = 30.0


@dataclass
class SinkRun:
    """What one run did for one sink of one tenant."""

    sink: str
    checkpoint: Checkpoint
    locked: bool = True
    """False: another publisher held this tenant's sink, and this run did nothing for it."""
    published: int = 0
    dead_lettered: int = 0
    requests: int = 0
    caught_up: bool = False
    waiting: bool = False
    """Caught up with what it read, but events after the checkpoint exist: committed since that read, or
    not readable yet behind an older open transaction. Worth another run soon."""
    error: str | None = None


@dataclass
class TenantRun:
    tenant_id: str
    sinks: list[SinkRun] = field(default_factory=list)

    @property
    def locked(self) -> bool:
        """True when no sink was skipped because another publisher held it."""
        return all(s.locked for s in self.sinks)

    @property
    def published(self) -> int:
        return sum(s.published for s in self.sinks)

    @property
    def waiting(self) -> bool:
        return any(s.waiting for s in self.sinks)


def _reader(sink: Sink) -> str:
    """The sink's name among the readers `PendingWork` keeps track of."""
    return f"feed:{sink.name}"


class _Refusals:
    """Refusals in one drain of one tenant's sink, and whether they are the sink's fault (held) or, after
    the sink has been held for them for `hold_seconds`, the events' after all (dead-lettered)."""

    def __init__(self, session: FeedSession, hold_seconds: float) -> None:
        self._session = session
        self._hold_seconds = hold_seconds
        self.streak = 0

    def hold_or_accept(self, error: SinkMisconfigured) -> None:
        """Raise `error` (hold the sink), unless it has been failing for longer than the hold allows."""
        since = self._session.failing_since()
        if since is not None and (datetime.now(UTC) - since).total_seconds() > self._hold_seconds:
            log.error(
                "feed: %s has refused for over %.0f s; the refused events go to the dead letters",
                error.sink,
                self._hold_seconds,
            )
            self.streak = 0
            return
        raise error


class _Backoff:
    """Random exponential backoff (full jitter), or the sink's Retry-After when it sent one."""

    def __init__(self) -> None:
        self._exponential = wait_random_exponential(multiplier=0.05, max=5.0)

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, FeedDeliveryError) and error.retry_after is not None:
            return min(error.retry_after, 30.0)
        return float(self._exponential(state))


class FeedPublisher:
    """Publishes tenants' all-streams to `sinks`. Thread-safe: the timer and the nudge share one."""

    def __init__(
        self,
        store: EventStore,
        sinks: Sequence[Sink],
        *,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.monotonic,
        workers: int | None = None,
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
        self.refusal_hold_seconds = settings.feed_refusal_hold_seconds
        self._clock = clock
        # Two pools, so that a timer run over every tenant never queues ahead of a nudged tenant. Each drain
        # holds one pooled connection (its lock's), so together they take at most half the pool.
        workers = workers or max(1, settings.pool_max_size // 4)
        self._timer_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="feed-timer")
        self._direct_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="feed-direct")
        self._lock = threading.Lock()
        self._failing: dict[tuple[str, str], float] = {}  # (tenant, sink) -> when it last failed

    def close(self) -> None:
        self._timer_pool.shutdown(wait=True)
        self._direct_pool.shutdown(wait=True)
        for sink in self.sinks:
            sink.close()

    def publish_all(self, run_seconds: float | None = None, pending: PendingWork | None = None) -> list[TenantRun]:
        """One run over every registered tenant and sink (the timer's job), `workers` drains at a time.
        With `pending`, a sink of a tenant is skipped while the tenant's all-stream has not moved since
        the sink was last found settled there (see `PendingWork`)."""
        deadline = self._clock() + (self.run_seconds if run_seconds is None else run_seconds)
        placements = self.store.tenants()
        due: dict[str, list[tuple[Sink, int, bool]]] = {}
        for sink in self.sinks:
            planned = pending.plan(_reader(sink), placements) if pending else [(p, 0, False) for p in placements]
            for placement, head, quiet in planned:
                due.setdefault(placement.tenant_id, []).append((sink, head, quiet))
        futures: dict[str, list[tuple[Sink, int, bool, Future[SinkRun]]]] = {}
        for tenant_id, sinks in due.items():
            try:
                tenant = self.store.feed(tenant_id)
            except Exception as exc:
                log.error("feed: tenant %s not published: %s: %s", tenant_id, type(exc).__name__, exc)
                continue
            futures[tenant.tenant_id] = [
                (
                    sink,
                    head,
                    quiet,
                    self._timer_pool.submit(self._drain_locked, tenant, sink, self.retry_seconds, deadline),
                )
                for sink, head, quiet in sinks
            ]
        runs = []
        for tenant_id, submitted in futures.items():
            sink_runs = []
            for sink, head, quiet, future in submitted:
                sink_run = self._outcome(tenant_id, sink, future)
                if pending and quiet and sink_run.caught_up and not sink_run.waiting and sink_run.error is None:
                    pending.settle(_reader(sink), tenant_id, head)
                sink_runs.append(sink_run)
            runs.append(TenantRun(tenant_id, sink_runs))
        return runs

    def publish_tenant(
        self,
        tenant_id: str,
        *,
        retry_seconds: float | None = None,
        run_seconds: float | None = None,
        skip_failing: bool = False,
    ) -> TenantRun:
        """Publish what the tenant's sinks have not taken yet (each sink unless another publisher is at it).

        `skip_failing` leaves out sinks that failed in the last `FAILING_QUIET_SECONDS` (the nudge does:
        it must stay quick, and the timer retries those)."""
        tenant = self.store.feed(tenant_id)
        retry = self.retry_seconds if retry_seconds is None else retry_seconds
        deadline = self._clock() + (self.run_seconds if run_seconds is None else run_seconds)
        sinks = [s for s in self.sinks if not (skip_failing and self._failing_lately(tenant.tenant_id, s.name))]
        futures = [self._direct_pool.submit(self._drain_locked, tenant, s, retry, deadline) for s in sinks]
        return TenantRun(
            tenant.tenant_id, [self._outcome(tenant.tenant_id, s, f) for s, f in zip(sinks, futures, strict=True)]
        )

    def _outcome(self, tenant_id: str, sink: Sink, future: Future[SinkRun]) -> SinkRun:
        try:
            return future.result()
        except Exception as exc:
            # The store failed (say), not the sink: logged, and that drain stops; the others are unaffected.
            log.error("feed: tenant %s, %s not published: %s: %s", tenant_id, sink.name, type(exc).__name__, exc)
            return SinkRun(sink.name, START, error=f"{type(exc).__name__}: {exc}")

    def _failing_lately(self, tenant_id: str, sink: str) -> bool:
        with self._lock:
            since = self._failing.get((tenant_id, sink))
        return since is not None and self._clock() - since < FAILING_QUIET_SECONDS

    def redrive(
        self, tenant_id: str, sink_name: str, *, retry_seconds: float | None = None, by: str | None = None
    ) -> SinkRun:
        """Send `sink_name` the events it refused before (after the cause was fixed). What it takes is
        stamped redriven (by `by`); what it refuses again stays a dead letter with the new reason. Redriven events
        arrive after later events of their streams: subscribers that need order re-read the stream."""
        tenant = self.store.feed(tenant_id)
        sink = next((s for s in self.sinks if s.name == sink_name), None)
        if sink is None:
            raise InvalidInput(f"no enabled sink named {sink_name!r}", field="sink")
        retry = self.retry_seconds if retry_seconds is None else retry_seconds
        deadline = self._clock() + self.run_seconds
        with tenant.session(sink.name) as session:
            run = SinkRun(sink.name, START, locked=session is not None)
            if session is None:
                return run
            after = START
            try:
                while entries := session.dead_letters(after, self.batch_events):
                    after = entries[-1].checkpoint
                    for batch_entries, batch in self._batches(tenant, entries):
                        letters: list[DeadLetter] = []
                        # Every one of these was refused before: refusals here are expected, never a hold.
                        self._deliver(sink, batch_entries, batch, retry, deadline, run, letters, None)
                        refused = {letter.event.event_id for letter in letters}
                        delivered = [e.event_id for e in batch_entries if e.event_id not in refused]
                        if letters:
                            self.store.registry.mark_alerting(tenant.tenant_id)
                        session.complete_redrive(delivered, letters, by)
                        run.dead_lettered += len(letters)
                run.caught_up = True
            except (SinkUnavailable, SinkMisconfigured) as exc:
                run.error = str(exc)
                log.warning("feed: redrive of tenant %s, %s stopped: %s", tenant.tenant_id, sink.name, exc)
        return run

    # one sink of one tenant

    def _drain_locked(self, tenant: TenantFeed, sink: Sink, retry_seconds: float, deadline: float) -> SinkRun:
        if self._clock() >= deadline:
            # Queued behind slow drains until the run's time was up: left to the next run.
            return SinkRun(sink.name, START, error="not started: the run's deadline had passed")
        with tenant.session(sink.name) as session:
            if session is None:
                return SinkRun(sink.name, START, locked=False)
            with timed(FEED_PUBLISH_DURATION, sink=sink.name) as timing:
                run = self._drain(tenant, session, sink, retry_seconds, deadline)
                timing.set(outcome="error" if run.error else "caught_up" if run.caught_up else "behind")
            return run

    def _drain(
        self, tenant: TenantFeed, session: FeedSession, sink: Sink, retry_seconds: float, deadline: float
    ) -> SinkRun:
        run = SinkRun(sink.name, session.checkpoint())
        key = (tenant.tenant_id, sink.name)
        refusals = _Refusals(session, self.refusal_hold_seconds)
        try:
            while True:
                page = session.read(run.checkpoint, self.batch_events)
                if not page.events:
                    run.caught_up = True
                    run.waiting = session.waiting(run.checkpoint)
                    break
                for batch_entries, batch in self._batches(tenant, page.events):
                    letters: list[DeadLetter] = []
                    self._deliver_batch(sink, batch_entries, batch, retry_seconds, deadline, run, letters, refusals)
                    if letters:  # marked before they are stored: the alert timer visits, a Slack post each
                        self.store.registry.mark_alerting(tenant.tenant_id)
                    run.checkpoint = session.complete_batch(batch_entries[-1].checkpoint, letters)
                    run.dead_lettered += len(letters)
                if not page.more:
                    # Caught up as of that read. Under a steady load there is always a little more by now;
                    # polling for it would keep this run going for ever, a request per few events. What
                    # was appended since has nudged (or the timer comes), and `waiting` says it is there.
                    run.caught_up = True
                    run.waiting = session.waiting(run.checkpoint)
                    break
                if self._clock() >= deadline:
                    break
        except (SinkUnavailable, SinkMisconfigured) as exc:
            run.error = str(exc)
            with self._lock:
                self._failing[key] = self._clock()
            log.warning("feed: tenant %s, %s held at %s: %s", tenant.tenant_id, sink.name, run.checkpoint, exc)
            session.record_failure(str(exc))
            return run
        with self._lock:
            self._failing.pop(key, None)
        return run

    def _batches(self, tenant: TenantFeed, entries: list[FeedEntry]) -> list[tuple[list[FeedEntry], Batch]]:
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

    def _deliver_batch(
        self,
        sink: Sink,
        entries: list[FeedEntry],
        batch: Batch,
        retry_seconds: float,
        deadline: float,
        run: SinkRun,
        letters: list[DeadLetter],
        refusals: _Refusals,
    ) -> None:
        """Deliver every event of the batch or collect it in `letters`; raise when the sink must be held."""
        published = run.published
        self._deliver(sink, entries, batch, retry_seconds, deadline, run, letters, refusals)
        refused = [letter for letter in letters if letter.status is not None]
        alike = len({letter.status for letter in refused}) == 1
        if len(entries) > 1 and run.published == published and len(refused) == len(entries) and alike:
            # Not one event of the batch taken, every one refused the same way: the sink (a format it does
            # not take, a verifier with another secret), not the events.
            refusals.hold_or_accept(
                SinkMisconfigured(sink.name, refused[0].status, f"every event refused alike: {refused[0].reason}")
            )

    def _deliver(
        self,
        sink: Sink,
        entries: list[FeedEntry],
        batch: Batch,
        retry_seconds: float,
        deadline: float,
        run: SinkRun,
        letters: list[DeadLetter],
        refusals: _Refusals | None,
    ) -> None:
        try:
            if batch.size > self.batch_bytes:
                raise BatchTooLarge(sink.name, None, f"{batch.size} bytes is over the {self.batch_bytes} limit")
            self._send(sink, batch, retry_seconds, deadline, run)
            run.published += len(entries)
            if refusals is not None:
                refusals.streak = 0
        except (BatchTooLarge, EventsRefused) as exc:
            if len(entries) > 1:
                middle = len(entries) // 2
                first, second = batch.halves()
                self._deliver(sink, entries[:middle], first, retry_seconds, deadline, run, letters, refusals)
                self._deliver(sink, entries[middle:], second, retry_seconds, deadline, run, letters, refusals)
                return
            if isinstance(exc, EventsRefused) and refusals is not None:
                refusals.streak += 1
                if refusals.streak > REFUSAL_STREAK_LIMIT:
                    refusals.hold_or_accept(
                        SinkMisconfigured(
                            sink.name,
                            exc.status,
                            f"{refusals.streak} events refused in a row, none taken: {exc.reason}",
                        )
                    )
            log.error("feed: %s refused event %s: %s", sink.name, entries[0].event_id, exc)
            letters.append(DeadLetter(entries[0], exc.status, exc.reason))

    def _send(self, sink: Sink, batch: Batch, retry_seconds: float, deadline: float, run: SinkRun) -> None:
        window = max(0.0, min(retry_seconds, deadline - self._clock()))
        retrying = Retrying(
            retry=retry_if_exception_type(SinkUnavailable),
            stop=stop_before_delay(window),
            wait=_Backoff(),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                run.requests += 1
                try:
                    sink.send(batch)
                except SinkUnavailable as exc:
                    log.warning("feed: %s: %s (will retry)", sink.name, exc)
                    raise
