"""`python -m bench.alert_latency [--dsn DSN] [--runs 5] [--schedule NCRONTAB]`: time from the failing execution
that crosses the failure-rate threshold to the PagerDuty trigger arriving at a local receiver, with the alert
timer's default schedule (every minute), and from the execution that brings the rate back to the resolve.

The app runs as `eventstore host` runs it (`python -m eventstore_local host`, its own process, Azurite, a scratch
database), its PagerDuty and Slack channels configured to the local receivers this process runs (the
stand-ins `eventstore host` starts), so that the arrival and the acknowledgement are read on one clock. Each
run has a tenant of its own and records executions of one workflow through the HTTP API (`TraceRecorder`):
18 succeeded and 1 failed (19, under the rule's minimum volume of 20), then, at a chosen second of the minute,
the failing 20th: 2 of 20 (10 % > 5 %). Its latency runs from the acknowledgement of its ExecutionFailed to the
trigger's arrival. Then 19 successes, and at another second the 20th: 2 of 40 (5 %, no longer over), to the
resolve's arrival. With the crossing, a message the host gave up on is put on workflow-messages-poison (base64,
as the host leaves it: an envelope for a tenant never onboarded), timed to its Slack post (the alert timer
takes it off the queue, keeps it and posts it). The seconds are spread over the minute (the crossing of run i
at 1 + 60 i / runs s, the resolving execution in the reverse order), so the runs sample the timer's phase
evenly instead of by chance.
Each figure is split into the wait for the timer (to its next occurrence) and the timer's own run (evaluating
the tenant and sending). Prints a table; writes bench/results/alert-latency-latest.json.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any
from uuid import uuid4

import psycopg
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient
from croniter import croniter
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench.facts import ROOT, code_facts, server_facts
from eventstore.alerts.failure_rate import dedup_key
from eventstore.client import EventStoreClient, TraceRecorder
from eventstore.settings import AlertsSchedule
from eventstore_local.host.process import HostProcess
from eventstore_local.standins.azurite import Azurite
from eventstore_local.standins.pagerduty import PagerDutyEvent, PagerDutyStandIn
from eventstore_local.standins.slack import SlackWebhookStandIn

RESULTS = Path(__file__).resolve().parent / "results" / "alert-latency-latest.json"
DSN_VARIABLE = "EVENTSTORE_BENCH_DATABASE_URL"
DEFAULT_SCHEDULE = AlertsSchedule.model_fields["alerts_schedule"].default
WORKFLOW = "bench-alerts"
TARGET_SECONDS = 90.0
WAIT_SECONDS = 200.0
"""How long a run waits for a page before it counts as missed: three periods of the default schedule and more."""


class DestinationDown(Exception):
    """The failure a failing execution records."""


@dataclass
class Run:
    tenant_id: str
    crossing_second: float
    """The second of the minute at which the crossing execution was acknowledged."""
    trigger_seconds: float
    trigger_after_timer: float
    """Of `trigger_seconds`: from the timer's occurrence to the arrival (evaluating and sending)."""
    slack_seconds: float
    resolving_second: float
    resolve_seconds: float
    resolve_after_timer: float
    poison_seconds: float
    """From the poison message put on `workflow-messages-poison` to its Slack post."""
    poison_after_timer: float


class AlertHost(HostProcess):
    """Azurite and `python -m eventstore_local host` on a free port against `dsn`, its alert channels set to
    `pagerduty` and `slack`, the alert timer on `schedule` (nothing of this shell's EVENTSTORE_* settings: the
    app's defaults are what is measured)."""

    def __init__(self, dsn: str, pagerduty: PagerDutyStandIn, slack: SlackWebhookStandIn, schedule: str) -> None:
        self.azurite = Azurite(in_memory=True).start()
        env = {
            "EVENTSTORE_DATABASE_URL": dsn,
            "AzureWebJobsStorage": self.azurite.connection_string,
            "EVENTSTORE_PAGERDUTY_ROUTING_KEY": pagerduty.routing_key,
            "EVENTSTORE_PAGERDUTY_URL": pagerduty.base_url,
            "EVENTSTORE_SLACK_WEBHOOK_URL": slack.url,
        }
        if schedule != DEFAULT_SCHEDULE:
            env["EVENTSTORE_ALERTS_SCHEDULE"] = schedule
        folder = Path(tempfile.mkdtemp(prefix="eventstore-bench-alerts-"))
        super().__init__(folder, env, ["--no-engine", "--eventgrid-port", "-1", "--alerts-port", "-1"])
        try:
            self.start(timeout=90)
        except BaseException:
            self.azurite.stop()
            raise

    def stop(self) -> int | None:
        code = super().stop()
        self.azurite.stop()
        return code


def record(client: EventStoreClient, tenant_id: str, *, failed: bool) -> float:
    """One execution of `WORKFLOW` (ExecutionStarted, then ExecutionCompleted or ExecutionFailed) on an instance
    of its own; the wall-clock time its last event was acknowledged."""
    recorder = TraceRecorder(client, tenant_id, instance_id=f"bench-{uuid4().hex[:12]}", workflow_id=WORKFLOW)
    try:
        with recorder.execution(operation_id=str(uuid4())):
            if failed:
                raise DestinationDown("the destination answered 503")
    except DestinationDown:
        pass
    return time.time()


def at_second(second: float | None) -> None:
    """Sleep until `second` of the minute (UTC; the next minute if it has passed by more than a moment); None: go
    now (a schedule other than every minute has no phase to aim at)."""
    if second is None:
        return
    now = time.time()
    wait = (second - now % 60) % 60
    time.sleep(wait if wait < 59.5 else 0)


def arrival(pagerduty: PagerDutyStandIn, key: str, action: str, timeout: float) -> PagerDutyEvent:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in pagerduty.accepted:
            if event.dedup_key == key and event.action == action:
                return event
        time.sleep(0.05)
    raise TimeoutError(f"no PagerDuty {action} for {key} within {timeout:g} s")


def slack_arrival(slack: SlackWebhookStandIn, tenant_id: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for post in slack.accepted:
            if tenant_id in (post.text or ""):
                return post.received_at
        time.sleep(0.05)
    raise TimeoutError(f"no Slack post about {tenant_id} within {timeout:g} s")


def poison(connection_string: str, tenant_id: str) -> float:
    """A message for a tenant never onboarded, on workflow-messages-poison as the host leaves it; when it was."""
    envelope = json.loads((ROOT / "eventstore_local" / "samples" / "envelope-trigger.json").read_text())
    envelope.update(tenantId=tenant_id, operationId=str(uuid4()))
    content = base64.b64encode(json.dumps(envelope).encode()).decode()
    with QueueClient.from_connection_string(connection_string, "workflow-messages-poison") as queue:
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        queue.send_message(content)
    return time.time()


def since_timer(schedule: str, moment: float) -> float:
    """Seconds from the schedule's last occurrence at or before `moment` to `moment`."""
    when = datetime.fromtimestamp(moment, UTC)
    fired: datetime = croniter(schedule, when, second_at_beginning=len(schedule.split()) == 6).get_prev(datetime)
    return moment - fired.timestamp()


def one_run(
    api: str,
    storage: str,
    pagerduty: PagerDutyStandIn,
    slack: SlackWebhookStandIn,
    schedule: str,
    crossing: float | None,
    resolving: float | None,
) -> Run:
    tenant_id = uuid4().hex + uuid4().hex
    key = dedup_key(tenant_id, WORKFLOW)
    with EventStoreClient(api) as client:
        client.onboard_tenant(tenant_id)
        for n in range(19):
            record(client, tenant_id, failed=n == 9)
        at_second(crossing)
        crossed = record(client, tenant_id, failed=True)  # 2 of 20
        stranger = uuid4().hex + uuid4().hex
        poisoned = poison(storage, stranger)
        trigger = arrival(pagerduty, key, "trigger", WAIT_SECONDS)
        posted = slack_arrival(slack, tenant_id, WAIT_SECONDS)
        dead_letter_posted = slack_arrival(slack, stranger, WAIT_SECONDS)
        for _ in range(19):
            record(client, tenant_id, failed=False)
        at_second(resolving)
        healed = record(client, tenant_id, failed=False)  # 2 of 40
        resolve = arrival(pagerduty, key, "resolve", WAIT_SECONDS)
    return Run(
        tenant_id=tenant_id,
        crossing_second=round(crossed % 60, 2),
        trigger_seconds=trigger.received_at - crossed,
        trigger_after_timer=since_timer(schedule, trigger.received_at),
        slack_seconds=posted - crossed,
        resolving_second=round(healed % 60, 2),
        resolve_seconds=resolve.received_at - healed,
        resolve_after_timer=since_timer(schedule, resolve.received_at),
        poison_seconds=dead_letter_posted - poisoned,
        poison_after_timer=since_timer(schedule, dead_letter_posted),
    )


def spread(values: list[float], digits: int = 1) -> str:
    return f"{min(values):6.{digits}f} {median(values):6.{digits}f} {max(values):6.{digits}f}"


def run(dsn: str, runs: int, schedule: str, output: Path) -> int:
    began = time.perf_counter()
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.alert_latency", *sys.argv[1:]]),
        "runs": runs,
        "schedule": schedule,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        **code_facts(),
        **server_facts(dsn),
    }
    aim = schedule == DEFAULT_SCHEDULE
    seconds: list[float | None] = [1 + 60 * i / runs if aim else None for i in range(runs)]
    results: list[Run] = []
    with PagerDutyStandIn() as pagerduty, SlackWebhookStandIn() as slack:
        host = AlertHost(dsn, pagerduty, slack, schedule)
        try:
            for i in range(runs):
                result = one_run(
                    host.api, host.azurite.connection_string, pagerduty, slack, schedule, seconds[i],
                    seconds[runs - 1 - i],
                )  # fmt: skip
                results.append(result)
                print(
                    f"run {i + 1}/{runs}: crossed at :{result.crossing_second:05.2f}, trigger after "
                    f"{result.trigger_seconds:.2f} s ({result.trigger_after_timer:.2f} s after the timer fired); "
                    f"resolving at :{result.resolving_second:05.2f}, resolve after {result.resolve_seconds:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            host.stop()
        pages = [(e.action, e.dedup_key) for e in pagerduty.accepted]
    duplicates = len(pages) - len(set(pages))
    triggers = [r.trigger_seconds for r in results]
    poisons = [r.poison_seconds for r in results]
    report: dict[str, Any] = {
        "meta": {**meta, "seconds": round(time.perf_counter() - began, 1)},
        "runs": [asdict(r) for r in results],
        "trigger_seconds": {"min": min(triggers), "median": median(triggers), "max": max(triggers)},
        "poison_seconds": {"min": min(poisons), "median": median(poisons), "max": max(poisons)},
        "duplicate_events": duplicates,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))
    verdict = f"target <= {TARGET_SECONDS:g}: {'met' if max(triggers) <= TARGET_SECONDS else 'MISSED'}"
    default = " (the default)" if schedule == DEFAULT_SCHEDULE else ""
    print(
        f"alert latency, {runs} runs, alert timer {schedule!r}{default}"
        f"\n{'':40} {'min':>6} {'median':>6} {'max':>6}  (seconds)"
        f"\n  {'crossing execution -> PagerDuty trigger':<38} {spread(triggers)}   {verdict}"
        f"\n  {'  of which after the timer fired':<38} {spread([r.trigger_after_timer for r in results], 2)}"
        f"\n  {'crossing execution -> Slack post':<38} {spread([r.slack_seconds for r in results])}"
        f"\n  {'resolving execution -> resolve':<38} {spread([r.resolve_seconds for r in results])}"
        f"\n  {'  of which after the timer fired':<38} {spread([r.resolve_after_timer for r in results], 2)}"
        f"\n  {'poison message -> Slack post':<38} {spread(poisons)}"
        f"\n  {'  of which after the timer fired':<38} {spread([r.poison_after_timer for r in results], 2)}"
        f"\n{duplicates} duplicate PagerDuty event(s); code: {meta.get('git_head', '?')}; results written to {output}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", help=f"PostgreSQL DSN (default: ${DSN_VARIABLE})")
    parser.add_argument("--runs", type=int, default=5, help="runs, each a tenant of its own (default 5)")
    parser.add_argument(
        "--schedule",
        default=DEFAULT_SCHEDULE,
        help="the alert timer's NCRONTAB (default the app's, %(default)r; a faster one makes a smoke run)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    dsn = args.dsn or os.environ.get(DSN_VARIABLE)
    if not dsn:
        parser.error(f"--dsn or ${DSN_VARIABLE} is needed")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    scratch = f"bench_alerts_{uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    try:
        return run(make_conninfo(dsn, dbname=scratch), args.runs, args.schedule, args.output)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(scratch)))


if __name__ == "__main__":
    sys.exit(main())
