"""`SampleEngine`: a small workflow engine for local runs, tests and the demo.

It takes Marain trigger envelopes from an Azure Storage queue (Azurite locally), records each in the event
store first (POST /messages, so the trace links to a recorded message), then runs the message's workflow
as one execution through the trace client (`eventstore.client`), step by step with attempts, against the
local destinations. A run that fails is a recorded outcome, not an engine error: its message is settled
(deleted) like a successful one, and the trace says what went wrong. Only when the store itself cannot be
reached or refuses the message does the message stay on the queue, to come back after 5 s, then less and
less often (at most after its 60 s lock); a message the store refused `MAX_DEQUEUE_COUNT` times goes to
`<queue>-poison`. An outage, however long, never makes a poison message.

A replay (docs/replay.md) arrives on the same queue wrapped as `eventstore.replay_wire` describes: the
stored message's bytes with the replay's marks beside them. The engine records those bytes as it records any
message (an idempotent repeat: the store answers the original's event id), runs them as an execution of the
replay (`replayId`, and `replayOf`: the message's latest execution when the replay was sent), and skips the
steps already completed for their idempotency key: the trace shows them as skipped, naming the step whose
output was reused.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from uuid import UUID

from azure.core.exceptions import AzureError
from azure.storage.queue import QueueClient, QueueMessage
from pydantic import ValidationError

from eventstore.client import ClientError, EventStoreClient, ExecutionRun, RequestRefused, RetryPolicy, TraceRecorder
from eventstore.replay_wire import ReplayMarks, parse_queue_message
from eventstore_local.engine.messages import (
    DEAL_WON,
    DEAL_WORKFLOW_ID,
    ENGINE_QUEUE,
    Deal,
    EngineMessage,
    decode_body,
    engine_queue,
)
from eventstore_local.engine.workflow import DealWorkflow

log = logging.getLogger("eventstore_local.engine")

LOCK_SECONDS = 60
RETRY_SECONDS = 5
"""A message the store could not take comes back after this long (the queue's backoff is the engine's)."""
MAX_DEQUEUE_COUNT = 5


class NoWorkflow(Exception):
    """The message's trigger names no workflow this engine runs."""


@dataclass(frozen=True)
class EngineResult:
    """What the engine did with one message."""

    operation_id: str
    message_event_id: str | None
    execution_id: str | None
    instance_id: str | None
    succeeded: bool
    error: str | None = None
    replay_id: str | None = None
    """Set when the message was a replay: the replay's id (its execution carries it as `replayId`)."""
    skipped_steps: tuple[str, ...] = ()
    """The names of the steps not run again: they had completed for their idempotency key."""


@dataclass
class _Worker:
    """What one processing thread uses alone: HTTP sessions are not shared between threads."""

    client: EventStoreClient
    workflow: DealWorkflow
    refused: bool = False
    """Whether the store refused (4xx) the message this worker last gave back, rather than being down."""

    def close(self) -> None:
        self.workflow.close()
        self.client.close()


class SampleEngine:
    """Processes `queue` of the storage account `connection_string` against the store at `api_url`, with
    `workers` threads taking messages side by side (as a real engine's instances do)."""

    def __init__(
        self,
        api_url: str,
        connection_string: str,
        *,
        crm_url: str,
        email_url: str,
        queue: str = ENGINE_QUEUE,
        attempts: int = 3,
        backoff: float = 0.1,
        max_poll_interval: float = 1.0,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        workers: int = 1,
    ) -> None:
        self.api_url = api_url
        self.connection_string = connection_string
        self.queue_name = queue
        self.max_poll_interval = max_poll_interval
        self._workers = [
            _Worker(
                EventStoreClient(api_url, api_key=api_key, retry=retry),
                DealWorkflow(crm_url, email_url, attempts=attempts, backoff=backoff),
            )
            for _ in range(max(1, workers))
        ]
        self.results: list[EngineResult] = []
        self._results_changed = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> Self:
        if not self._threads:
            self._stopping.clear()
            for n, worker in enumerate(self._workers):
                thread = threading.Thread(target=self._loop, args=(worker,), name=f"sample-engine-{n}", daemon=True)
                self._threads.append(thread)
                thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []
        for worker in self._workers:
            worker.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[EngineResult]:
        """Blocks until `count` messages were processed (settled or not); returns the results."""
        with self._results_changed:
            if not self._results_changed.wait_for(lambda: len(self.results) >= count, timeout):
                raise TimeoutError(f"{len(self.results)} of {count} message(s) processed within {timeout:g} s")
            return list(self.results)

    # -- the queue ---------------------------------------------------------------------------------------

    def _loop(self, worker: _Worker) -> None:
        with engine_queue(self.connection_string, self.queue_name) as queue:
            self._take(queue, worker)

    def _take(self, queue: QueueClient, worker: _Worker) -> None:
        idle = 0.05
        # A few at a time per worker: the others take the rest instead of waiting behind one worker's batch.
        batch = 16 if len(self._workers) == 1 else 4
        while not self._stopping.is_set():
            try:
                messages = list(queue.receive_messages(max_messages=batch, visibility_timeout=LOCK_SECONDS))
            except AzureError as exc:
                log.warning("engine: cannot read queue %s: %s", self.queue_name, exc)
                messages = []
                idle = self.max_poll_interval
            for message in messages:
                if self._stopping.is_set():
                    break
                self._settle(queue, message, self.process(decode_body(message.content), worker), worker)
            if messages:
                idle = 0.05
            else:
                self._stopping.wait(idle)
                idle = min(idle * 2, self.max_poll_interval)

    def _settle(self, queue: QueueClient, message: QueueMessage, result: EngineResult | None, worker: _Worker) -> None:
        deliveries = message.dequeue_count or 1
        try:
            if result is not None:
                queue.delete_message(message)
            elif worker.refused and deliveries >= MAX_DEQUEUE_COUNT:
                with engine_queue(self.connection_string, f"{self.queue_name}-poison") as poison:
                    poison.send_message(message.content)
                queue.delete_message(message)
                log.error("engine: message %s moved to %s-poison", message.id, self.queue_name)
            else:
                # The store was down (or refused it, fewer times than the limit): the message comes back soon,
                # then less and less often. Only refusals make a poison message; an outage never does.
                wait = min(RETRY_SECONDS * 2 ** min(deliveries - 1, 6), LOCK_SECONDS)
                queue.update_message(message, visibility_timeout=int(wait))
        except AzureError as exc:  # it comes back after its lock, and is recorded once (operationId)
            log.warning("engine: could not settle message %s: %s", message.id, exc)

    # -- one message -------------------------------------------------------------------------------------

    def process(self, raw: bytes, worker: _Worker | None = None) -> EngineResult | None:
        """Records the message (a replay's original bytes), runs its workflow as one execution; the result, or
        None when the message must come back later (the store could not be reached or refused it)."""
        worker = worker or self._workers[0]
        marks, body, _ = parse_queue_message(raw)
        replay_id = str(marks.replay_id) if marks else None
        try:
            message = EngineMessage.model_validate_json(body)
        except ValidationError as exc:
            log.error("engine: not a trigger envelope, dropped: %s", str(exc).splitlines()[0])
            return self._done(EngineResult("", None, None, None, False, "not a trigger envelope", replay_id))
        # A replay belongs to the tenant that stored the message (the envelope must name the same one).
        tenant_id = marks.tenant_id if marks else message.tenant_id
        try:
            accepted = worker.client.record_message(tenant_id, body)
        except ClientError as exc:
            log.warning("engine: message %s not recorded (%s); it will come back", message.operation_id, exc)
            worker.refused = isinstance(exc, RequestRefused)
            return None
        if marks is not None:
            self._check_replay(marks, accepted.event_id)
        instance_id = message.instance_id or f"message-{accepted.event_id}"
        recorder = TraceRecorder(worker.client, tenant_id, instance_id=instance_id, workflow_id=DEAL_WORKFLOW_ID)
        execution_id: str | None = None
        skipped: tuple[str, ...] = ()
        try:
            with recorder.execution(
                message_event_id=accepted.event_id,
                operation_id=message.operation_id,
                replay_id=replay_id,
                replay_of=marks.replay_of if marks else None,
            ) as run:
                execution_id = run.execution_id
                try:
                    self._run_workflow(worker, run, message)
                finally:
                    skipped = tuple(run.skipped_steps)
        except ClientError as exc:
            log.warning("engine: trace of message %s not recorded (%s); it will come back", message.operation_id, exc)
            worker.refused = isinstance(exc, RequestRefused)
            return None
        except Exception as exc:
            log.info(
                "engine: %s %s: execution %s failed: %s", message.trigger.trigger_name, instance_id, execution_id, exc
            )
            return self._done(
                EngineResult(
                    message.operation_id, str(accepted.event_id), execution_id, instance_id, False, str(exc),
                    replay_id, skipped,
                )
            )  # fmt: skip
        log.info(
            "engine: %s %s: execution %s succeeded%s%s",
            message.trigger.trigger_name, instance_id, execution_id,
            f" (replay {replay_id})" if replay_id else "", f", skipped {', '.join(skipped)}" if skipped else "",
        )  # fmt: skip
        return self._done(
            EngineResult(
                message.operation_id, str(accepted.event_id), execution_id, instance_id, True, None, replay_id, skipped
            )
        )

    @staticmethod
    def _check_replay(marks: ReplayMarks, recorded: UUID) -> None:
        """A replay's bytes are the original message's: recording them again answers its event id. Anything
        else means the marks and the bytes disagree; the store's answer is what the bytes are, so the run is
        linked to it, and the disagreement is logged."""
        if recorded != marks.original_event_id:
            log.warning(
                "engine: replay %s names message %s, but its bytes were recorded as %s; the execution is linked to %s",
                marks.replay_id, marks.original_event_id, recorded, recorded,
            )  # fmt: skip

    @staticmethod
    def _run_workflow(worker: _Worker, run: ExecutionRun, message: EngineMessage) -> None:
        if message.trigger.trigger_name != DEAL_WON:
            raise NoWorkflow(f"no workflow handles trigger {message.trigger.trigger_name!r}")
        worker.workflow.run(run, Deal.model_validate(message.trigger.parameters))

    def _done(self, result: EngineResult) -> EngineResult:
        with self._results_changed:
            self.results.append(result)
            self._results_changed.notify_all()
        return result
