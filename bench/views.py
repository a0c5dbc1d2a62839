"""`python -m bench.views [--dsn DSN] [--quick]`: the views against their targets, in one run on one database.

1. Catch-up: one tenant's backlog (100,000 events over 1,000 instance streams, each event a transition)
   brought into every view of `VIEWS` from the start (`ViewRunner.rebuild`, which builds beside and swaps),
   beside the change feed's drain of the same backlog to the local Event Grid stand-in (`FeedPublisher`),
   rounds in alternating order. Target: views events/s >= 0.5 x the feed's.
2. Lag under a steady load: 500 appends/s of one event each to random instance streams of a fresh tenant
   (4 writer threads on one schedule), the instances view kept current by the nudge after each append, as
   deployed: from `append` returning to the batch holding the event committed. Target: p99 <= 1 s.
3. `GET /instances?status=faulted`, first page of 100, in-process (the server's time, without HTTP): from
   the view (bringing it up to date first, as the route does), at 1,000, 10,000 and 100,000 instances (1 in
   100 faulted, loaded with SQL, then analysed as autovacuum would have), beside the fold the route used
   before the view (one call looks at up to 1,000 instances, folding each one's stream). Target: <= 50 ms,
   independent of the tenant's size.
Prints a table; writes bench/results/views-latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
from azure.core.credentials import AzureKeyCredential
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench.facts import code_facts, server_facts
from bench.timing import median
from eventstore import EventStore, EventType, NewEvent, Settings, instance_stream_id, query
from eventstore.feed.nudge import Nudger
from eventstore.feed.publisher import FeedPublisher, TenantRun
from eventstore.feed.sinks import EventGridSink
from eventstore.models import Checkpoint, RecordedEvent
from eventstore.store import PendingWork, ViewSession
from eventstore.views import INSTANCES, VIEWS, View, ViewRunner
from eventstore_local.standins.eventgrid import EventGridStandIn

RESULTS = Path(__file__).resolve().parent / "results" / "views-latest.json"
DSN_VARIABLE = "EVENTSTORE_BENCH_DATABASE_URL"
KEY = "bench-views-key"
EVENTS, QUICK_EVENTS = 100_000, 2_000
STREAMS = 1000
APPEND_BATCH = 100
RATE, LATENCY_SECONDS, QUICK_LATENCY_SECONDS = 500.0, 20.0, 3.0
WRITERS = 4
SIZES, QUICK_SIZES = (1_000, 10_000, 100_000), (1_000, 5_000)
READS = 20
FOLD_SCAN = 1000
IDLE, QUICK_IDLE = 300, 20


def new_tenant(store: EventStore) -> str:
    tenant_id = uuid4().hex + uuid4().hex
    store.onboard_tenant(tenant_id)
    return tenant_id


def transition(instance: str, index: int) -> NewEvent:
    payload = json.dumps({"newState": f"state-{index}", "newStatus": "waiting", "workflowId": "wf-bench"})
    return NewEvent(
        event_id=uuid4(),
        event_type=EventType.TRANSITION_COMPLETED,
        payload=payload.encode(),
        workflow_id="wf-bench",
        workflow_instance_id=instance,
    )


def populate(store: EventStore, tenant_id: str, events: int, streams: int) -> None:
    tenant = store.tenant(tenant_id)
    per_stream = max(1, events // streams)
    written = 0
    while written < events:
        instance = uuid4().hex
        in_stream = min(per_stream, events - written)
        for first in range(0, in_stream, APPEND_BATCH):
            count = min(APPEND_BATCH, in_stream - first)
            tenant.append(instance_stream_id(instance), [transition(instance, first + i) for i in range(count)])
        written += in_stream


# --- 1. catch-up beside the feed's drain -------------------------------------------------------------------


def drain_feed(store: EventStore, tenant_id: str, grid: EventGridStandIn, events: int, number: int) -> float:
    sink = EventGridSink(grid.endpoint, AzureKeyCredential(KEY), timeout=10, name=f"eventgrid-views-{number}")
    settings = store.settings.model_copy(update={"feed_run_seconds": 3600.0})
    publisher = FeedPublisher(store, [sink], settings=settings)
    grid.clear()
    try:
        started = time.perf_counter()
        run = publisher.publish_tenant(tenant_id)
        seconds = time.perf_counter() - started
    finally:
        publisher.close()
    if run.published != events or len(grid.accepted) != events:
        raise AssertionError(f"the feed published {run.published} events, the stand-in took {len(grid.accepted)}")
    grid.clear()
    return seconds


def catch_up_views(store: EventStore, tenant_id: str, events: int) -> float:
    runner = ViewRunner(store, VIEWS)
    started = time.perf_counter()
    for view in VIEWS:
        run = runner.rebuild(tenant_id, view.name)
        if not run.caught_up or run.applied != events:
            raise AssertionError(f"view {view.name} applied {run.applied} of {events} events: {run}")
    return time.perf_counter() - started


# --- 2. lag under a steady load ----------------------------------------------------------------------------


class StampingRunner(ViewRunner):
    """Notes when each event's batch committed (bench-only instrumentation of the runner)."""

    def __init__(self, store: EventStore, views: Sequence[View]) -> None:
        super().__init__(store, views)
        self.visible: dict[Any, float] = {}

    def _apply(
        self, session: ViewSession, view: View, events: list[RecordedEvent]
    ) -> tuple[int, Checkpoint, str | None]:
        result = super()._apply(session, view, events)
        now = time.perf_counter()
        for applied in events[: result[0]]:
            self.visible.setdefault(applied.event_id, now)
        return result


def measure_lag(store: EventStore, seconds: float, rate: float) -> dict[str, float]:
    tenant_id = new_tenant(store)
    tenant = store.tenant(tenant_id)
    runner = StampingRunner(store, [INSTANCES])
    nudger = Nudger(lambda t: (runner.run_tenant(t, run_seconds=5.0), TenantRun(t))[1])
    appended: dict[Any, float] = {}
    lock = threading.Lock()
    instances = [uuid4().hex for _ in range(200)]
    start = time.perf_counter() + 0.2
    total = int(seconds * rate)

    def write(index: int) -> None:
        for number in range(index, total, WRITERS):
            due = start + number / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            instance = random.choice(instances)
            new = transition(instance, number)
            tenant.append(instance_stream_id(instance), [new])
            with lock:
                appended[new.event_id] = time.perf_counter()
            nudger.nudge(tenant_id)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.perf_counter() + 10
    while len(runner.visible.keys() & appended.keys()) < len(appended) and time.perf_counter() < deadline:
        runner.run_tenant(tenant_id)
        time.sleep(0.05)
    nudger.close()
    lags = sorted(runner.visible[e] - t for e, t in appended.items() if e in runner.visible)
    missing = len(appended) - len(lags)

    def percentile(q: float) -> float:
        return lags[min(len(lags) - 1, int(q * len(lags)))] * 1000 if lags else float("nan")

    return {
        "appends": len(appended),
        "appends_per_second": len(appended) / seconds,
        "p50_ms": percentile(0.50),
        "p90_ms": percentile(0.90),
        "p99_ms": percentile(0.99),
        "max_ms": lags[-1] * 1000 if lags else float("nan"),
        "missing": missing,
    }


# --- 3. the faulted instances' first page -------------------------------------------------------------------


def load_instances(dsn: str, schema: str, count: int) -> None:
    """`count` instances, one InstanceCreated each and a TransitionFailed for one in 100, written with SQL
    (the fastest way to a large tenant; the views read them like any other events)."""
    name = "'b-' || lpad(g::text, 7, '0')"
    statement = sql.SQL(
        "WITH e AS (SELECT g, s, gen_random_uuid() AS id FROM generate_series(1, %(n)s) AS g,"
        " LATERAL generate_series(1, CASE WHEN g %% 100 = 0 THEN 2 ELSE 1 END) AS s),"
        " st AS (INSERT INTO {streams} (stream_id, version) SELECT 'instance:' || " + name + ", max(s)"
        " FROM e GROUP BY g),"
        " ids AS (INSERT INTO {ids} (event_id, stream_id, sequence_number)"
        " SELECT id, 'instance:' || " + name + ", s FROM e)"
        " INSERT INTO {events} (global_position, stream_id, sequence_number, event_id, event_type, payload,"
        " payload_sha256, payload_size, payload_json, content_type, workflow_id, workflow_instance_id, recorded_at)"
        " SELECT nextval({seq}), 'instance:' || " + name + ", s, id,"
        " CASE WHEN s = 1 THEN 'InstanceCreated' ELSE 'TransitionFailed' END, p, sha256(p), length(p),"
        " convert_from(p, 'UTF8')::jsonb, 'application/json', 'wf-bench', " + name + ", now()"
        " FROM e, LATERAL (SELECT convert_to(CASE WHEN s = 1"
        ' THEN \'{{"newState": "waiting-for-submission", "newStatus": "waiting"}}\''
        " ELSE '{{\"error\": \"boom\"}}' END, 'UTF8') AS p) AS x ORDER BY g, s"
    ).format(
        streams=sql.Identifier(schema, "streams"),
        ids=sql.Identifier(schema, "event_ids"),
        events=sql.Identifier(schema, "events"),
        seq=sql.Literal(f"{schema}.global_position_seq"),
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement, {"n": count})


def analyze(dsn: str, schema: str, *tables: str) -> None:
    """Give the planner the statistics autovacuum would have gathered by then: tables filled by one bulk
    statement a moment ago have none, and without them PostgreSQL scans a 100,000-row partition to find
    the events after a checkpoint at its end (measured: 37 ms against 0.07 ms)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in tables:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema, name)))


def fold_first_page(store: EventStore, tenant_id: str) -> int:
    """The route before the view: up to 1,000 instances looked at, each one's stream folded."""
    tenant = store.tenant(tenant_id)
    prefix = instance_stream_id("x")[:-1]
    found = 0
    for stream in tenant.list_stream_ids(prefix, "", FOLD_SCAN):
        if query.rebuild_state(tenant, stream.removeprefix(prefix)).status == "faulted":
            found += 1
    return found


def timed(call: Any, reads: int) -> float:
    seconds = []
    for _ in range(reads):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return median(seconds) * 1000


def measure_pages(store: EventStore, dsn: str, sizes: Sequence[int]) -> list[dict[str, Any]]:
    out = []
    for count in sizes:
        tenant_id = new_tenant(store)
        load_instances(dsn, store.tenant(tenant_id).placement.schema_name, count)
        clock = time.perf_counter()
        ViewRunner(store, [INSTANCES]).run_tenant(tenant_id, run_seconds=3600)
        caught_up = time.perf_counter() - clock
        analyze(dsn, store.tenant(tenant_id).placement.schema_name, "events", "view_instances")
        page, _ = query.list_instances(store, tenant_id, "faulted", "", 100)
        if len(page) != min(100, count // 100):
            raise AssertionError(f"{len(page)} faulted instances on the first page of {count}")
        view_ms = timed(lambda t=tenant_id: query.list_instances(store, t, "faulted", "", 100), READS)
        fold_ms = timed(lambda t=tenant_id: fold_first_page(store, t), 3)
        out.append({"instances": count, "view_ms": view_ms, "fold_ms": fold_ms, "catch_up_s": caught_up})
        print(f"  {count:>7,} instances: view {view_ms:.1f} ms, fold {fold_ms:.0f} ms", file=sys.stderr, flush=True)
    return out


# --- 4. what idle tenants cost the database -----------------------------------------------------------------


def transactions(dsn: str, settle: float) -> int:
    """Transactions the database has counted. An idle session reports its counts at most once a second,
    and one whose report was put off retries ten seconds later: waiting `settle` seconds (11 in a real run)
    first lets every pooled connection report."""
    time.sleep(settle)
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def measure_idle(
    store: EventStore, dsn: str, grid: EventGridStandIn, tenants: int, ticks: int, settle: float
) -> dict[str, Any]:
    """Transactions per tick of both timers (the feed's, one sink; the views') over `tenants` idle tenants,
    without and with the pending-work signal. Other tenants of the bench database count too; they are
    idle as well."""
    for _ in range(tenants):
        tenant = store.tenant(new_tenant(store))
        instance = uuid4().hex
        tenant.append(instance_stream_id(instance), [transition(instance, 0)])
    sink = EventGridSink(grid.endpoint, AzureKeyCredential(KEY), timeout=10, name="eventgrid-idle")
    publisher = FeedPublisher(store, [sink], settings=store.settings.model_copy(update={"feed_run_seconds": 3600.0}))
    runner = ViewRunner(store, VIEWS)
    pending = PendingWork(store.pools, full_pass_seconds=3600)
    out: dict[str, Any] = {"tenants": len(store.tenants()), "ticks": ticks}
    try:
        for label, signal in (("without", None), ("with", pending)):
            publisher.publish_all(pending=signal)  # catch up (and, with the signal, settle)
            runner.run_all(pending=signal)
            before = transactions(dsn, settle)
            for _ in range(ticks):
                publisher.publish_all(pending=signal)
                runner.run_all(pending=signal)
            out[f"{label}_per_tick"] = (transactions(dsn, settle) - before - 1) / ticks
    finally:
        publisher.close()
    return out


# --- the run ----------------------------------------------------------------------------------------------


def run(dsn: str, quick: bool, rounds: int, output: Path = RESULTS) -> int:
    events = QUICK_EVENTS if quick else EVENTS
    started = time.perf_counter()
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.views", *sys.argv[1:]]),
        "events": events,
        "views": [v.name for v in VIEWS],
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        **code_facts(),
        **server_facts(dsn),
    }
    store = EventStore(Settings(database_url=dsn))
    try:
        with EventGridStandIn(key=KEY) as grid:
            tenant_id = new_tenant(store)
            print(f"populating {events:,} events over {STREAMS:,} streams", file=sys.stderr, flush=True)
            populate(store, tenant_id, events, STREAMS)
            drain_feed(store, tenant_id, grid, events, 0)  # warm up both
            catch_up_views(store, tenant_id, events)
            feed, views = [], []
            for number in range(1, rounds + 1):
                order = [("feed", "views"), ("views", "feed")][number % 2]
                for what in order:
                    if what == "feed":
                        feed.append(drain_feed(store, tenant_id, grid, events, number))
                    else:
                        views.append(catch_up_views(store, tenant_id, events))
                print(f"round {number}: feed {feed[-1]:.2f} s, views {views[-1]:.2f} s", file=sys.stderr, flush=True)
        ratios = [f / v for f, v in zip(feed, views, strict=True)]
        catch = {
            "feed_events_per_second": events / median(feed),
            "views_events_per_second": events / median(views),
            "ratio_views_to_feed": median(ratios),
            "ratios": ratios,
        }
        print("lag under steady ingest", file=sys.stderr, flush=True)
        lag = measure_lag(store, QUICK_LATENCY_SECONDS if quick else LATENCY_SECONDS, RATE)
        print("faulted instances, first page", file=sys.stderr, flush=True)
        pages = measure_pages(store, dsn, QUICK_SIZES if quick else SIZES)
        print("idle tenants", file=sys.stderr, flush=True)
        with EventGridStandIn(key=KEY) as grid:
            idle = measure_idle(
                store, dsn, grid, QUICK_IDLE if quick else IDLE, 3 if quick else 10, 0.5 if quick else 11
            )
    finally:
        store.close()
    meta["seconds"] = round(time.perf_counter() - started, 1)
    print(render(catch, lag, pages, idle, meta))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"catch_up": catch, "lag": lag, "pages": pages, "idle": idle, "meta": meta}, indent=2))
    print(f"\nresults written to {output} ({meta['seconds']} s)")
    return 0


def render(
    catch: dict[str, Any],
    lag: dict[str, float],
    pages: list[dict[str, Any]],
    idle: dict[str, Any],
    meta: dict[str, Any],
) -> str:
    views = ", ".join(meta["views"])
    lines = [
        f"catch-up from a backlog of {meta['events']:,} events (views: {views})",
        f"  feed drain                 {catch['feed_events_per_second']:>10,.0f} events/s",
        f"  views catch-up             {catch['views_events_per_second']:>10,.0f} events/s",
        f"  ratio views / feed         {catch['ratio_views_to_feed']:>10.2f}   per round "
        + " ".join(f"{r:.2f}" for r in catch["ratios"])
        + f"   target >= 0.5: {'met' if catch['ratio_views_to_feed'] >= 0.5 else 'MISSED'}",
        f"lag, append to visible in the instances view ({lag['appends_per_second']:.0f} appends/s, nudge)",
        f"  p50 {lag['p50_ms']:.0f} ms, p90 {lag['p90_ms']:.0f} ms, p99 {lag['p99_ms']:.0f} ms,"
        f" max {lag['max_ms']:.0f} ms, {lag['missing']:.0f} missing"
        f"   target p99 <= 1000 ms: {'met' if lag['p99_ms'] <= 1000 else 'MISSED'}",
        "GET /instances?status=faulted, first page (median, in-process)",
    ]
    for page in pages:
        verdict = "met" if page["view_ms"] <= 50 else "MISSED"
        lines.append(
            f"  {page['instances']:>7,} instances: view {page['view_ms']:6.1f} ms (target <= 50: {verdict}),"
            f" fold {page['fold_ms']:7.0f} ms; view built in {page['catch_up_s']:.1f} s"
        )
    lines.append(
        f"idle: {idle['tenants']:,} tenants, both timers (1 sink, {len(meta['views'])} view(s)), transactions per tick:"
        f" {idle['without_per_tick']:.0f} without the pending-work signal, {idle['with_per_tick']:.0f} with it"
    )
    lines.append(f"code: {meta.get('git_head', '?')}; load average {meta['load_average_at_start']:.2f} at start")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", help=f"PostgreSQL DSN (default: ${DSN_VARIABLE})")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small backlog, short load, small tenants")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args(argv)
    dsn = args.dsn or os.environ.get(DSN_VARIABLE)
    if not dsn:
        parser.error(f"--dsn or ${DSN_VARIABLE} is needed")
    # A database of its own on the same server: the idle figures count exactly the tenants made here.
    scratch = f"bench_views_{uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    try:
        return run(make_conninfo(dsn, dbname=scratch), args.quick, 1 if args.quick else args.rounds, args.output)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(scratch)))


if __name__ == "__main__":
    sys.exit(main())
