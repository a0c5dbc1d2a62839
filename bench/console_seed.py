"""The tenant `bench.console` measures: `messages` received messages (Marain trigger envelopes) over the last
7 days, each with what the engine reported about it in its instance's stream, and the views brought up to date.

What each message gets is fixed by its number, so every seed of one size has the same shape:

- 1 in 100 is only received (no execution yet), 1 in 500 is still processing (started, not ended);
- 1 in 20 has a failing execution (a CRM record, then an email the destination refuses twice, as
  `tests/http/test_traces_api.py` `execution()` reports it, each refusal naming its own request id): a third
  of those dead-lettered, a third failed, a third failed and then run again successfully (a second
  execution, 2 attempts);
- the others a succeeded execution (the same two steps, the email on its first attempt) and the engine's
  TransitionCompleted with the instance's new context.

Messages go to `messages // 10` instances (InstanceCreated first); 1 in 100 of them ends faulted (a
TransitionFailed after its last message); one busy instance gets 1 message in 100, so its timeline is longer
than a page. Last, an operator's bulk replay of the dead-lettered messages, paused as soon as it was started
(nothing is sent: the bench drives no replay).

Events are appended through the store, the audit stream in batches of `AUDIT_BATCH` and each message's
execution in one append, stamped by the store's `clock` as if they had come in over the 7 days (an append is
stamped once: a batch's messages share a time, as do an execution's events).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4, uuid5

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from eventstore import EventStore, EventType, NewEvent, Settings
from eventstore.errors import UnknownTenant
from eventstore.replay import requests as replay
from eventstore.settings import RouterSettings
from eventstore.store import AUDIT_STREAM_ID, instance_stream_id
from eventstore.views import VIEWS, ViewRunner
from eventstore.views.messages import MessageFilter
from eventstore_local.samples import sample_bytes

SEED_VERSION = 3
DAYS = 7
AUDIT_BATCH = 10
WORKFLOWS = (
    ("deal-won-workflow", "deal.won"),
    ("simple-expenses-workflow", "Submit"),
    ("invoice-approval-workflow", "Approve"),
)
BUSY_INSTANCE = "busy-" + "0" * 8
REPLAY_ROUTER = RouterSettings(queue="bench-console-replays")
"""Where the seeded replay job would send (it never does: it is paused, and nothing drives it)."""
_NAMES = UUID("6f1f2c1e-53a4-4d57-9a1e-0b6c9c1b2a10")
_MARK = "bench.console seed v{version}: {messages} messages, seeded {at}"

RECEIVED, PROCESSING, SUCCEEDED, FAILED, DEAD_LETTERED, RETRIED = (
    "received", "processing", "succeeded", "failed", "dead-lettered", "retried",
)  # fmt: skip


def fate(number: int) -> str:
    """What happened to message `number`."""
    if number % 100 == 99:
        return RECEIVED
    if number % 500 == 3:
        return PROCESSING
    if number % 20 == 7:
        return (DEAD_LETTERED, FAILED, RETRIED)[(number // 20) % 3]
    return SUCCEEDED


def instance_of(number: int, instances: int) -> str:
    if number % 100 == 42:
        return BUSY_INSTANCE
    return str(uuid5(_NAMES, str((number * 7919) % instances)))


def faulted(instance_id: str) -> bool:
    return instance_id != BUSY_INSTANCE and int(instance_id[:8], 16) % 100 == 13


def seed_tenant_id(messages: int) -> str:
    """The tenant a seed of this size and version goes to, so that the next run finds it."""
    return hashlib.sha256(f"bench.console/v{SEED_VERSION}/{messages}".encode()).hexdigest()


# --- the events ----------------------------------------------------------------------------------------------


def envelope(tenant_id: str, operation_id: UUID, instance_id: str, workflow_id: str, trigger: str) -> bytes:
    """The sample trigger envelope (`eventstore_local/samples/envelope-trigger.json`) for this message."""
    document = json.loads(sample_bytes("envelope-trigger.json"))
    document.update(tenantId=tenant_id, operationId=str(operation_id))
    document["trigger"].update(id=str(uuid4()), triggerName=trigger, subjects=[instance_id])
    document["properties"] = {"GetWorkflowInstancesPageNumber": 0, "WorkflowInstanceId": instance_id,
                              "WorkflowId": workflow_id}  # fmt: skip
    return json.dumps(document, indent=2).encode()


def _event(kind: EventType, body: dict[str, Any], workflow_id: str, instance_id: str) -> NewEvent:
    return NewEvent(
        event_id=uuid4(), event_type=kind, payload=json.dumps(body).encode(), workflow_id=workflow_id,
        workflow_instance_id=instance_id, source_system="bench",
    )  # fmt: skip


def execution(execution_id: str, message_id: UUID, outcome: str) -> list[tuple[EventType, dict[str, Any]]]:
    """An execution's trace events: create a CRM record, then send an email (the engine's two steps)."""

    def step(step_id: str, name: str, attempt: int = 1, **extra: Any) -> dict[str, Any]:
        return {"executionId": execution_id, "stepId": step_id, "name": name, "attempt": attempt,
                "idempotencyKey": f"{message_id}/{name}", **extra}  # fmt: skip

    crm, mail = f"{execution_id}-crm", f"{execution_id}-mail"
    to = {"to": "buyer@contoso.example", "subject": "Your order"}

    def unavailable() -> dict[str, Any]:
        # Each report names its own request, as a destination's errors do: the failures page must normalise
        # every one to find that they are one problem.
        return {"message": f"mail answered 503 (request {uuid4()})", "statusCode": 503, "body": '{"busy": true}'}

    events: list[tuple[EventType, dict[str, Any]]] = [
        (EventType.EXECUTION_STARTED, {"executionId": execution_id, "messageEventId": str(message_id)}),
        (EventType.STEP_STARTED, step(crm, "create-crm-record", input={"dealId": str(message_id)[:8]})),
    ]
    if outcome == PROCESSING:
        return events
    events.append((EventType.STEP_COMPLETED, step(crm, "create-crm-record", output={"recordId": f"crm-{crm}"})))
    events.append((EventType.STEP_STARTED, step(mail, "send-email", input=to)))
    if outcome == SUCCEEDED:
        return [
            *events,
            (EventType.STEP_COMPLETED, step(mail, "send-email", output={"sent": True})),
            (EventType.EXECUTION_COMPLETED, {"executionId": execution_id}),
        ]
    return [
        *events,
        (EventType.STEP_FAILED, step(mail, "send-email", error=unavailable())),
        (EventType.STEP_STARTED, step(mail, "send-email", 2, input=to)),
        (EventType.STEP_FAILED, step(mail, "send-email", 2, error=unavailable())),
        (EventType.EXECUTION_FAILED, {"executionId": execution_id, "error": {"message": "send-email failed"},
                                      "deadLettered": outcome == DEAD_LETTERED}),
    ]  # fmt: skip


@dataclass
class Clock:
    """The moment the seeding store stamps the next append with."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


Append = tuple[datetime, str, list[NewEvent]]
"""The moment it is stamped with, the stream, the events."""


def _appends(tenant_id: str, messages: int, start: datetime, step: timedelta) -> Iterator[Append]:
    """Every append of the seed, in the order they are made."""
    instances = max(1, messages // 10)
    last: dict[str, int] = {}
    for number in range(messages):
        last[instance_of(number, instances)] = number
    created: set[str] = set()
    for first in range(0, messages, AUDIT_BATCH):
        at = start + step * first
        batch = range(first, min(first + AUDIT_BATCH, messages))
        ids = {n: uuid4() for n in batch}
        audit = []
        for number in batch:
            instance_id = instance_of(number, instances)
            workflow_id, trigger = WORKFLOWS[number % len(WORKFLOWS)]
            audit.append(NewEvent(
                event_id=ids[number], event_type=EventType.TRIGGER_RECEIVED, source_system="http",
                payload=envelope(tenant_id, ids[number], instance_id, workflow_id, trigger),
                workflow_instance_id=instance_id, correlation_id=str(ids[number]),
            ))  # fmt: skip
        yield at, AUDIT_STREAM_ID, audit
        for number in batch:
            instance_id = instance_of(number, instances)
            workflow_id, _ = WORKFLOWS[number % len(WORKFLOWS)]
            outcome = fate(number)
            events = []
            if instance_id not in created:
                created.add(instance_id)
                context = {"Claimant": "J George", "Customer": f"customer-{number % 997}"}
                events.append(_event(EventType.INSTANCE_CREATED, {
                    "workflowId": workflow_id, "newState": "waiting-for-submission", "newStatus": "waiting",
                    "newContext": context}, workflow_id, instance_id))  # fmt: skip
            if outcome != RECEIVED:
                ran = SUCCEEDED if outcome == SUCCEEDED else (FAILED if outcome == RETRIED else outcome)
                trace = execution(f"exec-{number:07d}", ids[number], ran)
                events += [_event(kind, body, workflow_id, instance_id) for kind, body in trace]
            if outcome == SUCCEEDED:
                events.append(_event(EventType.TRANSITION_COMPLETED, {
                    "workflowId": workflow_id, "newState": f"step-{number % 5}", "newStatus": "waiting",
                    "newContext": {"Claimant": "J George", "LastMessage": str(ids[number]), "Count": number}},
                    workflow_id, instance_id))  # fmt: skip
            if faulted(instance_id) and last[instance_id] == number:
                events.append(_event(EventType.TRANSITION_FAILED, {
                    "workflowId": workflow_id, "error": {"message": "the CRM refused the record (422)"}},
                    workflow_id, instance_id))  # fmt: skip
            moment = at + step * (number - first) + timedelta(seconds=1)
            if events:
                yield moment, instance_stream_id(instance_id), events
            if outcome == RETRIED:  # run again (a replay), a little later, and it works
                again = execution(f"exec-{number:07d}-r", ids[number], SUCCEEDED)
                yield (moment + step / 2, instance_stream_id(instance_id),
                       [_event(kind, body, workflow_id, instance_id) for kind, body in again])  # fmt: skip


# --- seeding ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    tenant_id: str
    messages: int
    reused: bool
    mark: str
    """What the tenant's schema comment says of the seed."""
    append_seconds: float = 0.0
    views_seconds: float = 0.0
    events: int = 0


def schema_of(store: EventStore, tenant_id: str) -> str:
    return store.tenant(tenant_id).placement.schema_name


def mark_of(dsn: str, schema: str) -> str | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT obj_description(to_regnamespace(%s), 'pg_namespace')", [schema]).fetchone()
    return str(row[0]) if row and row[0] else None


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def catch_up(store: EventStore, dsn: str, tenant_id: str, say: Callable[[str], None] = _note) -> float:
    """Run every view of the tenant until each has applied everything; the seconds it took."""
    runner = ViewRunner(store, VIEWS)
    began = time.perf_counter()
    applied = dict.fromkeys((v.name for v in VIEWS), 0)
    schema = schema_of(store, tenant_id)
    while True:
        runs = runner.run_tenant(tenant_id, run_seconds=20.0)
        # As autovacuum would as the tables grow (a server may have it off): planned without statistics, the
        # executions view's lookups by step and execution scan whole tables (measured: 750 events/s instead
        # of 8,000 at 400,000 events).
        vacuum_analyze(dsn, schema, "view_%")
        for run in runs:
            if run.stopped or run.error:
                raise RuntimeError(f"the {run.view} view stopped: {run.stopped or run.error}")
            applied[run.view] += run.applied
        say(f"  views: {', '.join(f'{k} {v:,}' for k, v in applied.items())} events applied"
            f" ({time.perf_counter() - began:.0f} s)")  # fmt: skip
        if all(r.locked and r.caught_up for r in runs):
            return time.perf_counter() - began


def vacuum_analyze(dsn: str, schema: str, like: str = "%") -> None:
    """What autovacuum would have done to a tenant 7 days old (to its tables named `like`): statistics, and
    visibility maps (index-only scans). Tables filled a moment ago by one session have neither."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND c.relname LIKE %s ORDER BY c.relname",
            [schema, like],
        ).fetchall()
        for (name,) in tables:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(schema, name)))


def paused_replay(store: EventStore, settings: Settings, tenant_id: str) -> None:
    """A bulk replay of the dead-lettered messages, paused at once."""
    started = replay.replay_bulk(
        store, settings, tenant_id, MessageFilter(status=DEAD_LETTERED), {"status": DEAD_LETTERED},
        reason="bench: the mail service is back", requested_by="bench.console", confirm=True,
    )  # fmt: skip
    assert isinstance(started, replay.Started)
    replay.change_job(store, tenant_id, started.job.job_id, "paused", by="bench.console", reason="bench: held")


def seed(dsn: str, tenant_id: str, messages: int, say: Callable[[str], None] = _note) -> Seed:
    """Onboard `tenant_id` and record the seed in it, then bring its views up to date."""
    # Only the seeding sessions skip waiting for the WAL flush: 100,000 commits would wait on the disk,
    # and what is measured afterwards is reads.
    fast = make_conninfo(dsn, options="-c synchronous_commit=off")
    end = datetime.now(UTC) - timedelta(minutes=2)
    start = end - timedelta(days=DAYS)
    step = (end - start) / messages
    clock = Clock(start)
    events = 0
    with EventStore(Settings(database_url=fast), clock=clock) as store:
        store.onboard_tenant(tenant_id)
        tenant = store.tenant(tenant_id)
        began = time.perf_counter()
        done = 0
        for moment, stream, batch in _appends(tenant_id, messages, start, step):
            clock.now = moment
            tenant.append(stream, batch)
            events += len(batch)
            if stream == AUDIT_STREAM_ID:
                done += len(batch)
                if done % 10_000 == 0 or done == messages:
                    elapsed = time.perf_counter() - began
                    say(f"  recorded {done:,} messages, {events:,} events ({elapsed:.0f} s,"
                        f" {events / elapsed:,.0f} events/s)")  # fmt: skip
        append_seconds = time.perf_counter() - began
    settings = Settings(database_url=dsn, replay_router=REPLAY_ROUTER)
    with EventStore(settings) as store:
        views_seconds = catch_up(store, dsn, tenant_id, say)
        schema = schema_of(store, tenant_id)
        paused_replay(store, settings, tenant_id)
        catch_up(store, dsn, tenant_id, say)
    vacuum_analyze(dsn, schema)
    mark = _MARK.format(version=SEED_VERSION, messages=messages, at=end.isoformat(timespec="seconds"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(sql.Identifier(schema), sql.Literal(mark)))
    return Seed(tenant_id, messages, False, mark, append_seconds, views_seconds, events)


def seeded(dsn: str, messages: int, reuse: str | None = None, fresh: bool = False) -> Seed:
    """The tenant to measure: `reuse` as it is; else the seed of this size from an earlier run when it was
    finished (its schema carries the mark); else a new seed (in a new tenant when `fresh`, or when the
    earlier one was left unfinished)."""
    with EventStore(Settings(database_url=dsn)) as store:
        if reuse is not None:
            schema = schema_of(store, reuse)  # UnknownTenant when it is not there
            return Seed(store.tenant(reuse).tenant_id, messages, True, mark_of(dsn, schema) or "(no seed mark)")
        tenant_id = uuid4().hex + uuid4().hex if fresh else seed_tenant_id(messages)
        try:
            mark = mark_of(dsn, schema_of(store, tenant_id))
        except UnknownTenant:
            mark = None
        else:
            if mark is None:
                _note(f"tenant {tenant_id} holds an unfinished seed: seeding a new tenant")
                tenant_id = uuid4().hex + uuid4().hex
        if mark is not None:
            _note(f"reusing tenant {tenant_id} ({mark})")
            return Seed(tenant_id, messages, True, mark)
    _note(f"seeding tenant {tenant_id}: {messages:,} messages over the last {DAYS} days")
    return seed(dsn, tenant_id, messages)
