"""The driver: puts the due items of each running job on the replays queue, at the job's rate, and moves
jobs along (a canary's check, the end of a job). Run by the replay timer over the tenants marked as having
jobs, and right after a job is created or resumed.

Two drivers may run the same job at once (the timer on two instances of the app): that is harmless,
because queueing an item twice is. The forwarder claims an item before it sends it and skips one that is
not waiting to be sent, so the job itself never forwards a message twice.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.queue import QueueClient

from eventstore.replay.forwarder import MAX_BATCH, ForwardMessage
from eventstore.replay.requests import change_job, changed_event, replay_outcomes
from eventstore.settings import Settings
from eventstore.storage_clients import StorageAccount
from eventstore.store import EventStore, ReplayJobRow, TenantReplays

log = logging.getLogger(__name__)

REPLAY_QUEUE = "workflow-replays"
"""The app's own queue of job items waiting to be forwarded (fixed: the queue trigger names it)."""
TICK_SECONDS = 5.0
"""The first run of a job may queue what its rate allows in this many seconds (later runs: since the last)."""
MAX_PER_RUN = 1000
STALE_SECONDS = 300.0
"""A queued item not sent after this long lost its queue message (or its forwarder died): queued again."""


def batch_size(rate: float) -> int:
    """Items per queue message: a quarter of a second's worth at the job's rate (1 for a slow job, so that
    it keeps its pace), at most `MAX_BATCH`."""
    return max(1, min(MAX_BATCH, math.floor(rate / 4)))


def queue_message(message: ForwardMessage) -> str:
    return base64.b64encode(message.model_dump_json(by_alias=True).encode()).decode("ascii")


class ReplayQueue:
    """The app's own replays queue (`REPLAY_QUEUE`), which the forwarder function reads: on the app's queue
    account, reached with its managed identity when the account URL is set (`storage_clients`)."""

    def __init__(self, settings: Settings, name: str = REPLAY_QUEUE) -> None:
        timeout = settings.dependency_timeout_seconds
        self._client: QueueClient = StorageAccount.queues(settings).queue(
            name, timeout=timeout, retry_total=1, connection_timeout=timeout, read_timeout=timeout
        )
        with contextlib.suppress(ResourceExistsError):
            self._client.create_queue()

    def put(self, message: ForwardMessage, delay: float) -> None:
        self._client.send_message(queue_message(message), visibility_timeout=max(0, math.floor(delay)))

    def close(self) -> None:
        self._client.close()


@dataclass
class DriveResult:
    tenants: int = 0
    queued: int = 0
    finished: list[str] = field(default_factory=list)
    paused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class ReplayDriver:
    def __init__(
        self,
        store: EventStore,
        settings: Settings,
        queue: Callable[[], ReplayQueue],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.settings = settings
        self._queue_factory = queue
        self._queue: ReplayQueue | None = None
        self._clock = clock
        # job -> (when this driver last queued for it, items it may queue and has not yet): a job sends at its
        # rate whatever the timer's period, a slow one (0.01/s) less than one item per run.
        self._credit: dict[Any, tuple[float, float]] = {}

    def _allowance(self, job: ReplayJobRow) -> int:
        now = self._clock()
        last, credit = self._credit.get(job.job_id, (now - TICK_SECONDS, 1.0))
        credit = min(credit + job.rate * (now - last), float(MAX_PER_RUN))
        self._credit[job.job_id] = (now, credit)
        return math.floor(credit)

    def _spent(self, job: ReplayJobRow, count: int) -> None:
        last, credit = self._credit[job.job_id]
        self._credit[job.job_id] = (last, credit - count)

    def _q(self) -> ReplayQueue:
        if self._queue is None:
            self._queue = self._queue_factory()
        return self._queue

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()
            self._queue = None

    def run_all(self, *, full_pass: bool = False) -> DriveResult:
        """Drive every marked tenant (every tenant on a full pass)."""
        result = DriveResult()
        marked = dict(self.store.registry.replaying())
        tenants: Iterable[str] = [p.tenant_id for p in self.store.tenants()] if full_pass else marked
        for tenant_id in tenants:
            try:
                active = self.drive_tenant(tenant_id, result)
            except Exception as exc:  # one tenant's trouble is logged and shown; the others go on
                log.exception("replays of tenant %s could not be driven", tenant_id)
                result.errors.append(f"{tenant_id}: {exc}")
                continue
            result.tenants += 1
            if not active and tenant_id in marked:
                self.store.registry.unmark_replaying(tenant_id, marked[tenant_id])
            elif active and tenant_id not in marked:
                self.store.registry.mark_replaying(tenant_id)
        return result

    def drive_tenant(self, tenant_id: str, result: DriveResult | None = None) -> bool:
        """Queue what is due for the tenant's running jobs; True while it has unfinished jobs."""
        result = result if result is not None else DriveResult()
        replays = self.store.replays(tenant_id)
        jobs = replays.active_jobs()
        for job in jobs:
            if job.state == "running":
                self._drive(replays, job, result)
        return any(j.state in ("running", "paused") for j in replays.active_jobs())

    def _drive(self, replays: TenantReplays, job: ReplayJobRow, result: DriveResult) -> None:
        canary = job.canary if job.canary and not job.canary_checked else None
        if canary is not None and not self._canary_passes(replays, job, canary, result):
            return
        limit = self._allowance(job)
        due = replays.due(job.job_id, limit, stale_seconds=STALE_SECONDS) if limit > 0 else []
        if canary is not None:
            due = [item for item in due if item.position <= canary]
        if not due:
            counts = replays.counts(job.job_id)
            if counts.pending + counts.queued + counts.sending == 0:
                finished = changed_event(job.job_id, "finished", by="replay", reason=None, counts=counts)
                if replays.finish_if_done(job.job_id, finished):
                    result.finished.append(str(job.job_id))
            return
        queue = self._q()
        queued: list[int] = []
        size = batch_size(job.rate)
        try:
            for start in range(0, len(due), size):
                batch = [item.position for item in due[start : start + size]]
                message = ForwardMessage(tenant_id=replays.tenant_id, job_id=job.job_id, positions=tuple(batch))
                queue.put(message, start / job.rate)
                queued += batch
        except AzureError as exc:
            log.warning("replay job %s: the replays queue did not take its items: %s", job.job_id, exc)
            result.errors.append(f"{job.job_id}: {exc}")
        finally:
            if queued:
                replays.mark_queued(job.job_id, queued)
                self._spent(job, len(queued))
                result.queued += len(queued)

    def _canary_passes(self, replays: TenantReplays, job: ReplayJobRow, canary: int, result: DriveResult) -> bool:
        """Whether the job may go past its first `canary` messages: not before all of them were sent and
        their executions ended; then only when their failure rate is within the job's limit, else the job
        pauses itself (resume or cancel)."""
        size = min(canary, job.matched)
        if job.sent < size:
            return True  # still sending the canary itself (the caller keeps to its positions)
        outcomes = replay_outcomes(replays, job.job_id, first=canary)
        ended = outcomes.get("succeeded", 0) + outcomes.get("failed", 0)
        if ended < size:
            return False  # wait for the engine to finish them
        failed = outcomes.get("failed", 0) / ended
        limit = job.max_failure_rate if job.max_failure_rate is not None else 0.0
        if failed > limit:
            reason = (
                f"canary: {outcomes.get('failed', 0)} of the first {ended} replays failed "
                f"({failed:.0%} > {limit:.0%}); resume or cancel"
            )
            change_job(self.store, replays.tenant_id, job.job_id, "paused", by="canary", reason=reason)
            result.paused.append(str(job.job_id))
            return False
        replays.canary_passed(job.job_id)
        return True
