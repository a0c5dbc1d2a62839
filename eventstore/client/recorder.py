"""`TraceRecorder`: what an engine wraps around its work so that every run can be inspected later.

    recorder = TraceRecorder("http://127.0.0.1:7071/api", tenant_id, instance_id="deal-42", workflow_id="deals")
    with recorder.execution(message_event_id=accepted.event_id) as run:      # ExecutionStarted
        with run.step("create-crm-record", input=record, idempotency_key="deal-42/crm") as step:
            step.output = crm.create(record)                                 # StepStarted, then StepCompleted
        run.run_step("send-email", send, input=mail, attempts=3)             # StepStarted/StepFailed per attempt
                                                                             # ExecutionCompleted (or Failed)

A replay (`recorder.execution(replay_id=...)`) skips the steps already completed for their idempotency key:
`run_step` records them as StepSkipped, naming the step that succeeded, and returns its recorded output.

Each event has an event id of its own, so a POST the transport retries is stored once. An exception inside
a block is recorded (StepFailed, then ExecutionFailed, with a `DestinationError`'s status and body) and
raised again: the recorder observes, it never swallows the engine's errors. Should recording a failure
fail too, the engine's own error is the one raised and the recording error is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from uuid import UUID, uuid4

import requests
from pydantic import JsonValue

from eventstore.client.errors import ClientError, DestinationError
from eventstore.client.models import (
    EVENT_TYPE_OF,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
    SkippedFor,
    StepCompleted,
    StepFailed,
    StepRecord,
    StepSkipped,
    StepStarted,
    Trace,
    TraceError,
    TracePayload,
)
from eventstore.client.store_client import EventStoreClient, OutcomeItem
from eventstore.client.transport import RetryPolicy

log = logging.getLogger(__name__)

DEFAULT_SOURCE_SYSTEM = "engine"


def trace_error(exc: BaseException) -> TraceError:
    """How a failure is reported: a `DestinationError` with the destination's status and body; anything else
    by its type and message."""
    if isinstance(exc, DestinationError):
        return TraceError(message=str(exc) or type(exc).__name__, status_code=exc.status_code, body=exc.body)
    text = str(exc)
    return TraceError(message=f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


class TraceRecorder:
    """Records the executions of one workflow instance (the events go to its stream).

    `base_url` is the API root (`http://host/api`), or an `EventStoreClient` to share. `api_key` is sent as
    `x-functions-key`. `retry` bounds the transport's retries (connection errors, 5xx, 503 Retry-After).
    """

    def __init__(
        self,
        base_url: str | EventStoreClient,
        tenant_id: str,
        *,
        instance_id: str,
        workflow_id: str | None = None,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        source_system: str = DEFAULT_SOURCE_SYSTEM,
    ) -> None:
        if isinstance(base_url, EventStoreClient):
            self.client = base_url
        else:
            self.client = EventStoreClient(base_url, api_key=api_key, retry=retry)
        self.tenant_id = tenant_id
        self.instance_id = instance_id
        self.workflow_id = workflow_id
        self.source_system = source_system

    @contextmanager
    def execution(
        self,
        *,
        message_event_id: UUID | str | None = None,
        operation_id: str | None = None,
        replay_of: str | None = None,
        execution_id: str | None = None,
        replay_id: UUID | str | None = None,
    ) -> Iterator[ExecutionRun]:
        """One attempt to process one received message: ExecutionStarted now; ExecutionCompleted when the block
        ends, or ExecutionFailed (with the error) when it raises, and the exception raised again.

        `replay_id`: the replay this execution processes (`ReplayMarks.replay_id` of `eventstore.replay_wire`);
        `replay_of`: the execution it repeats. Either makes it a replay, which skips completed steps."""
        message = UUID(str(message_event_id)) if message_event_id is not None else None
        replay = UUID(str(replay_id)) if replay_id is not None else None
        run = ExecutionRun(
            self,
            execution_id or str(uuid4()),
            message_event_id=message,
            operation_id=operation_id,
            replay_of=replay_of,
            replay_id=replay,
        )
        run.record(
            ExecutionStarted(
                execution_id=run.execution_id,
                message_event_id=message,
                operation_id=operation_id,
                replay_of=replay_of,
                replay_id=replay,
            )
        )
        try:
            yield run
        except Exception as exc:
            run.record_failure(ExecutionFailed(execution_id=run.execution_id, error=trace_error(exc)), exc)
            raise
        run.record(ExecutionCompleted(execution_id=run.execution_id))

    def record(self, payload: TracePayload, causation_id: str | None = None) -> None:
        """Appends one trace event to the instance's stream."""
        execution_id = payload.execution_id
        item = OutcomeItem(
            event_id=uuid4(),
            event_type=EVENT_TYPE_OF[type(payload)].value,
            payload=payload.model_dump(mode="json", by_alias=True),
            workflow_id=self.workflow_id,
            source_system=self.source_system,
            correlation_id=execution_id,
            causation_id=causation_id,
        )
        self.client.append(self.tenant_id, self.instance_id, [item])


@dataclass
class StepRun:
    """One attempt of one step: set `output` inside the block; it is recorded when the block ends. A step
    `run_step` skipped has `skipped_for` (the step that succeeded) and that step's output."""

    execution_id: str
    step_id: str
    name: str
    attempt: int
    idempotency_key: str | None
    input: JsonValue
    output: JsonValue = None
    skipped_for: SkippedFor | None = None


@dataclass
class ExecutionRun:
    """A running execution: its steps are recorded through it."""

    recorder: TraceRecorder
    execution_id: str
    message_event_id: UUID | None = None
    operation_id: str | None = None
    replay_of: str | None = None
    replay_id: UUID | None = None
    steps: list[StepRun] = field(default_factory=list)

    @property
    def replaying(self) -> bool:
        """Whether this execution replays a message (a replay id, or the execution it repeats)."""
        return self.replay_id is not None or self.replay_of is not None

    @property
    def skipped_steps(self) -> list[str]:
        """The names of the steps `run_step` skipped, in order."""
        return [s.name for s in self.steps if s.skipped_for is not None]

    def record(self, payload: TracePayload) -> None:
        causation = str(self.message_event_id) if self.message_event_id else self.operation_id
        self.recorder.record(payload, causation_id=causation)

    def record_failure(self, payload: TracePayload, cause: BaseException) -> None:
        """Records a failure without hiding `cause`: a recording error is logged, not raised."""
        try:
            self.record(payload)
        except ClientError as exc:
            log.warning(
                "trace: could not record %s of execution %s (%s); the error recorded was: %s",
                type(payload).__name__, self.execution_id, exc, cause,
            )  # fmt: skip

    @contextmanager
    def step(
        self,
        name: str,
        *,
        input: JsonValue = None,
        idempotency_key: str | None = None,
        attempt: int = 1,
        step_id: str | None = None,
    ) -> Iterator[StepRun]:
        """One attempt of a step: StepStarted now; StepCompleted with `step.output` when the block ends, or
        StepFailed (a `DestinationError`'s status and body) when it raises, and the exception raised again.
        Attempts of one step share its `step_id`."""
        step = StepRun(self.execution_id, step_id or str(uuid4()), name, attempt, idempotency_key, input)
        self.steps.append(step)
        common = {
            "execution_id": self.execution_id,
            "step_id": step.step_id,
            "name": name,
            "attempt": attempt,
            "idempotency_key": idempotency_key,
        }
        self.record(StepStarted(**common, input=input))
        try:
            yield step
        except Exception as exc:
            self.record_failure(StepFailed(**common, error=trace_error(exc)), exc)
            raise
        self.record(StepCompleted(**common, output=step.output))

    def run_step(
        self,
        name: str,
        action: Callable[[StepRun], JsonValue],
        *,
        input: JsonValue = None,
        idempotency_key: str | None = None,
        attempts: int = 1,
        retry_on: tuple[type[Exception], ...] = (DestinationError,),
        backoff: float = 0.5,
        skip_completed: bool | None = None,
    ) -> JsonValue:
        """Runs `action(step)` as one step, up to `attempts` times while it raises one of `retry_on`, waiting
        `backoff` seconds, doubled each time, between attempts. Each attempt is recorded with its number under
        one step id; the output is what `action` returns. After the last failed attempt its error is raised.

        With an `idempotency_key` and `skip_completed` (default: when this execution is a replay), a step
        already completed with that key is not run again: it is recorded as StepSkipped, naming the step that
        succeeded, and that step's recorded output is returned."""
        if idempotency_key is not None and (self.replaying if skip_completed is None else skip_completed):
            done = self.completed_step(idempotency_key)
            if done is not None:
                return self.skip_step(name, idempotency_key, done).output
        step_id = str(uuid4())
        for attempt in range(1, max(1, attempts) + 1):
            try:
                with self.step(
                    name, input=input, idempotency_key=idempotency_key, attempt=attempt, step_id=step_id
                ) as step:
                    step.output = action(step)
                return step.output
            except retry_on:
                if attempt >= attempts:
                    raise
                time.sleep(backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    def skip_step(self, name: str, idempotency_key: str, done: StepRecord) -> StepRun:
        """Records StepSkipped for a step not run again because `done` (a step that succeeded with the same
        idempotency key) did its work; the step carries `done`'s output."""
        skipped_for = SkippedFor(execution_id=done.execution_id, step_id=done.step_id)
        step = StepRun(self.execution_id, str(uuid4()), name, 1, idempotency_key, None, done.output, skipped_for)
        self.record(
            StepSkipped(
                execution_id=self.execution_id,
                step_id=step.step_id,
                name=name,
                attempt=1,
                idempotency_key=idempotency_key,
                skipped_for=skipped_for,
            )
        )
        self.steps.append(step)
        log.info(
            "trace: step %s (%s) already completed in execution %s; skipped, output reused",
            name, idempotency_key, done.execution_id,
        )  # fmt: skip
        return step

    def completed_step(self, idempotency_key: str) -> StepRecord | None:
        """The step recorded as succeeded with this idempotency key (in any execution), or None: a replay
        reuses its `output` instead of calling the destination again. Never a step a replay skipped: that one
        only points at the step that did the work, which is the one returned. Asks the steps view, which
        follows the recorded events within moments."""
        steps = self.recorder.client.steps(self.recorder.tenant_id, idempotency_key)
        return next((s for s in steps if s.status == "succeeded"), None)

    def trace(self, *, wait: bool = False, timeout: float = 10.0) -> Trace:
        """This execution as the store holds it (with `wait`, once the views show it finished)."""
        client = self.recorder.client
        if wait:
            return client.wait_for_execution(self.recorder.tenant_id, self.execution_id, timeout=timeout)
        return client.execution(self.recorder.tenant_id, self.execution_id)


def call_destination(
    session: requests.Session,
    method: str,
    url: str,
    *,
    json: JsonValue = None,
    timeout: float = 10.0,
    name: str | None = None,
) -> JsonValue:
    """An HTTP call to a destination, for use inside a step: the JSON answer on 2xx, a `DestinationError`
    with the status and body on any other answer, or with no status when there was no answer."""
    who = name or url
    try:
        response = session.request(method, url, json=json, timeout=timeout)
    except requests.RequestException as exc:
        raise DestinationError(f"{who}: no answer: {exc}") from exc
    if response.status_code >= 300:
        raise DestinationError(
            f"{who} answered {response.status_code} {response.reason}".rstrip(),
            status_code=response.status_code,
            body=response.text,
        )
    if not response.content:
        return None
    try:
        answer: JsonValue = response.json()
    except ValueError:
        return response.text
    return answer
