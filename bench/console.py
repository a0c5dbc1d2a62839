"""`python -m bench.console [--dsn DSN] [--messages 100000] [--reuse TENANT | --fresh] [--calls 20]`: the server
time of each operator console page on a tenant with 100,000 messages (issue 14: under 300 ms each). Without a
DSN an embedded PostgreSQL is started for the run (and its seed is gone with it).

The tenant is seeded once (`bench.console_seed`: messages over the last 7 days with their executions, about
5 % failing, some instances faulted; a few minutes) and found again by the next run of the same size. Each
GET route of `eventstore.console.routes.ROUTES` but the static assets is answered in-process by
`eventstore.console.pages.answer` with a real `azure.functions.HttpRequest`, as the Functions host calls it
(open access, the settings from the environment), its route's values taken from the seeded data; the message
search also filtered and at a page half way, the replay and erasure pages also with a dry run. Per page: 3
calls to warm up, then `--calls` timed ones; p50, p95 and max. Beside them, for scale, a bare psycopg SELECT
of the 50 newest rows of the messages view. Prints a table; writes bench/results/console-latest.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import azure.functions as func
import psycopg
from psycopg import sql

from bench.console_seed import REPLAY_ROUTER, Seed, schema_of, seeded
from bench.facts import code_facts, server_facts
from eventstore import EventStore, Settings
from eventstore.console.pages import ConsoleRoute, answer
from eventstore.console.routes import ROUTES
from eventstore.errors import InvalidTenantId, UnknownTenant
from eventstore.replay.requests import list_jobs
from eventstore.services import services

RESULTS = Path(__file__).resolve().parent / "results" / "console-latest.json"
DSN_VARIABLE = "EVENTSTORE_BENCH_DATABASE_URL"
TARGET_MS = 300.0
WARMUPS = 3
SKIPPED_ROUTES = {"console_static": "the console's own stylesheet and script (a file read once, cached)"}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Case:
    """One page to time: a route, the values of its parameters and its query."""

    label: str
    route: ConsoleRoute
    route_params: Mapping[str, str]
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        path = _PLACEHOLDER.sub(lambda m: quote(self.route_params[m.group(1)], safe=""), self.route.route)
        return path + ("?" + urlencode(self.params) if self.params else "")

    def request(self) -> func.HttpRequest:
        return func.HttpRequest(
            "GET", f"http://127.0.0.1:7071/api/{self.path}", headers={}, params=dict(self.params),
            route_params=dict(self.route_params), body=b"",
        )  # fmt: skip


@dataclass(frozen=True)
class Timing:
    label: str
    path: str
    status: int
    size: int
    ms: list[float]

    @property
    def p50(self) -> float:
        return percentile(self.ms, 0.50)

    @property
    def p95(self) -> float:
        return percentile(self.ms, 0.95)

    @property
    def max(self) -> float:
        return max(self.ms)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile: of 20 calls, p95 is the 19th fastest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --- what to ask for --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Samples:
    """Ids from the seeded tenant's views for the routes' parameters: per parameter, the values to ask for
    (the first one for every route that has it, the others each in a case of their own)."""

    values: dict[str, list[tuple[str, str]]]
    """parameter -> [(what it is, value)]"""
    workflow_id: str
    later_page: str
    """The `before` cursor of the messages search half way through the tenant's messages."""
    facts: dict[str, Any]


def samples(dsn: str, store: EventStore, tenant_id: str) -> Samples:
    schema = schema_of(store, tenant_id)

    def one(conn: psycopg.Connection[Any], statement: str, *params: Any) -> tuple[Any, ...]:
        tables = {
            t: sql.Identifier(schema, t) for t in ("events", "view_messages", "view_instances", "view_trace_executions")
        }
        row = conn.execute(sql.SQL(statement).format(**tables), params).fetchone()
        if row is None:
            raise RuntimeError(f"the seeded tenant has no row for: {statement}")
        return tuple(row)

    with psycopg.connect(dsn, autocommit=True) as conn:
        failed = one(
            conn,
            "SELECT event_id, latest_execution_id, workflow_instance_id FROM {view_messages}"
            " WHERE status = 'dead-lettered' ORDER BY received_at DESC LIMIT 1",
        )
        rerun = one(
            conn,
            "SELECT e.execution_id FROM {view_messages} m JOIN {view_trace_executions} e"
            " ON e.message_event_id = m.event_id AND e.status = 'failed'"
            " WHERE m.status = 'succeeded' AND m.attempts = 2 ORDER BY m.received_at DESC LIMIT 1",
        )
        succeeded = one(
            conn,
            "SELECT event_id, latest_execution_id, workflow_instance_id, workflow_id FROM {view_messages}"
            " WHERE status = 'succeeded' AND attempts = 1 ORDER BY received_at DESC LIMIT 1",
        )
        busiest = one(
            conn, "SELECT workflow_instance_id, last_sequence FROM {view_instances} ORDER BY last_sequence DESC LIMIT 1"
        )
        typical = one(conn, "SELECT last_sequence FROM {view_instances} WHERE workflow_instance_id = %s", succeeded[2])
        middle = one(conn, "SELECT count(*) / 2 FROM {view_messages}")[0]
        cursor = one(
            conn,
            "SELECT received_at, event_id FROM {view_messages} ORDER BY received_at DESC, event_id DESC"
            " OFFSET %s LIMIT 1",
            middle,
        )
        counts: dict[str, int] = dict(
            conn.execute(
                sql.SQL("SELECT status, count(*) FROM {} GROUP BY status ORDER BY status").format(
                    sql.Identifier(schema, "view_messages")
                )
            ).fetchall()
        )
        faulted = one(conn, "SELECT count(*) FROM {view_instances} WHERE status = 'faulted'")[0]
        instances = one(conn, "SELECT count(*) FROM {view_instances}")[0]
        executions = one(conn, "SELECT count(*) FROM {view_trace_executions}")[0]
        events = one(conn, "SELECT count(*) FROM {events}")[0]
    return Samples(
        values={
            "tenantId": [("", tenant_id)],
            "eventId": [("dead-lettered", str(failed[0])), ("succeeded", str(succeeded[0]))],
            "executionId": [
                ("failed, dead-lettered", str(failed[1])),
                ("succeeded", str(succeeded[1])),
                ("failed, then a rerun succeeded", str(rerun[0])),
            ],
            "instanceId": [
                (f"{typical[0]} events", str(succeeded[2])),
                (f"busiest, {busiest[1]:,} events", str(busiest[0])),
            ],
            "replayId": [(f"{j.state}, {j.matched:,} messages", str(j.job_id)) for j in list_jobs(store, tenant_id)],
        },
        workflow_id=str(succeeded[3]),
        later_page=f"{cursor[0].isoformat()}|{cursor[1]}",
        facts={
            "messages_by_status": counts,
            "instances": instances,
            "faulted_instances": faulted,
            "executions": executions,
            "events": events,
        },
    )


def cases(found: Samples) -> tuple[list[Case], dict[str, str]]:
    """A case per GET route (and per further value of its parameters), and the routes left out with why."""
    out: list[Case] = []
    skipped: dict[str, str] = {}
    for route in ROUTES:
        if "GET" not in route.methods:
            continue
        if route.name in SKIPPED_ROUTES:
            skipped[route.name] = SKIPPED_ROUTES[route.name]
            continue
        names = _PLACEHOLDER.findall(route.route)
        unknown = [n for n in names if not found.values.get(n)]
        if unknown:
            skipped[route.name] = f"no seeded value for {', '.join('{' + n + '}' for n in unknown)}"
            continue
        first = {n: found.values[n][0][1] for n in names}
        what = ", ".join(found.values[n][0][0] for n in names if found.values[n][0][0])
        out.append(Case(f"{route.name}" + (f" ({what})" if what else ""), route, first))
        for name in names:
            for label, value in found.values[name][1:]:
                out.append(Case(f"{route.name} ({label})", route, {**first, name: value}))
        if route.name == "console_messages":
            out += [
                Case(f"{route.name} (status=dead-lettered)", route, first, {"status": "dead-lettered"}),
                Case(f"{route.name} (status=processing)", route, first, {"status": "processing"}),
                Case(f"{route.name} (workflow, last 24 h)", route, first,
                     {"workflow": found.workflow_id, "from": _day_ago()}),
                Case(f"{route.name} (a page half way: before=)", route, first, {"before": found.later_page}),
            ]  # fmt: skip
        if route.name == "console_replays":
            dry = {"dryrun": "1", "status": "dead-lettered"}
            out.append(Case(f"{route.name} (dry run, status=dead-lettered)", route, first, dry))
        if route.name == "console_erasures":
            instance = found.values["instanceId"][0]
            message = found.values["eventId"][-1][1]  # a succeeded one: its TransitionCompleted names it
            out += [
                Case(f"{route.name} (dry run, an instance of {instance[0]})", route, first,
                     {"dryrun": "1", "kind": "instance", "value": instance[1], "reason": "bench"}),
                Case(f"{route.name} (dry run, a value in 1 event)", route, first,
                     {"dryrun": "1", "kind": "value", "value": message, "paths": "$.newContext.LastMessage",
                      "eventTypes": "TransitionCompleted", "reason": "bench"}),
                Case(f"{route.name} (dry run, a value in every message)", route, first,
                     {"dryrun": "1", "kind": "value", "value": "J George", "paths": "$.trigger.parameters.SubmittedBy",
                      "eventTypes": "TriggerReceived", "reason": "bench"}),
            ]  # fmt: skip
        if route.name == "console_failures":
            out.append(Case(f"{route.name} (workflow=)", route, first, {"workflow": found.workflow_id}))
    return out, skipped


def _day_ago() -> str:
    return (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")


# --- timing -----------------------------------------------------------------------------------------------


def time_case(case: Case, calls: int) -> Timing:
    handler = case.route.handler
    response = None
    for _ in range(WARMUPS):
        response = answer(case.request(), handler)
    assert response is not None
    seconds = []
    for _ in range(calls):
        request = case.request()
        started = time.perf_counter()
        response = answer(request, handler)
        seconds.append(time.perf_counter() - started)
    return Timing(case.label, case.path, response.status_code, len(response.get_body()), [s * 1000 for s in seconds])


def raw_baseline(dsn: str, schema: str, calls: int) -> Timing:
    """The 50 newest rows of the messages view, every column, over one open connection."""
    statement = sql.SQL(
        "SELECT event_id, event_type, message_type, source_system, workflow_id, workflow_instance_id, operation_id,"
        " trigger_id, payload_sha256, received_at, status, latest_execution_id, attempts, updated_at, replay_count,"
        " last_replay_id, last_replay_at FROM {} ORDER BY received_at DESC, event_id DESC LIMIT 50"
    ).format(sql.Identifier(schema, "view_messages"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(WARMUPS):
            conn.execute(statement).fetchall()
        seconds = []
        for _ in range(calls):
            started = time.perf_counter()
            rows = conn.execute(statement).fetchall()
            seconds.append(time.perf_counter() - started)
    return Timing("raw psycopg: 50 newest rows of view_messages", "-", 200, len(rows), [s * 1000 for s in seconds])


def _setting(dsn: str, name: str) -> str | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting(%s)", [name]).fetchone()
    return str(row[0]) if row else None


def use_database(dsn: str) -> None:
    """Point the process's `services()` (what the console's handlers use) at the bench database, open, with
    a replay router (a dry run needs one; the bench starts no replay, so nothing is sent)."""
    os.environ["EVENTSTORE_DATABASE_URL"] = dsn
    os.environ["EVENTSTORE_CONSOLE_ACCESS"] = "open"
    os.environ["EVENTSTORE_REPLAY_ROUTER__QUEUE"] = str(REPLAY_ROUTER.queue)
    services.cache_clear()


# --- the run ----------------------------------------------------------------------------------------------


def render(timings: list[Timing], baseline: Timing, skipped: dict[str, str], seed: Seed, meta: dict[str, Any]) -> str:
    facts = meta["tenant"]
    statuses = ", ".join(f"{k} {v:,}" for k, v in facts["messages_by_status"].items())
    lines = [
        f"tenant {seed.tenant_id}: {sum(facts['messages_by_status'].values()):,} messages ({statuses});"
        f" {facts['executions']:,} executions; {facts['instances']:,} instances, {facts['faulted_instances']:,}"
        f" faulted; {facts['events']:,} events",
        f"  {seed.mark}"
        + (
            " (reused)"
            if seed.reused
            else f"; seeded in {seed.append_seconds:.0f} s of appends + {seed.views_seconds:.0f} s of views catch-up"
        ),
        f"PostgreSQL {meta.get('server_version', '?')} ({meta.get('database', '?')}, autovacuum"
        f" {meta.get('autovacuum', '?')}); {meta['cpus']} CPUs;"
        f" load average {meta['load_average_at_start']:.2f} at start; code {meta.get('git_head', '?')}",
        f"server time per page, in-process (pages.answer), {meta['calls']} calls after {WARMUPS} warm-ups, ms;"
        f" target p95 < {TARGET_MS:.0f}",
        "",
        f"{'page':<58} {'status':>6} {'bytes':>8} {'p50':>8} {'p95':>8} {'max':>8}  verdict",
    ]
    for t in [*timings, baseline]:
        verdict = "" if t is baseline else ("met" if t.p95 < TARGET_MS and t.status == 200 else "MISSED")
        size = "-" if t is baseline else f"{t.size:,}"
        lines.append(f"{t.label:<58} {t.status:>6} {size:>8} {t.p50:>8.1f} {t.p95:>8.1f} {t.max:>8.1f}  {verdict}")
    for name, why in skipped.items():
        lines.append(f"not measured: {name}: {why}")
    missed = [t for t in timings if t.p95 >= TARGET_MS or t.status != 200]
    lines.append(f"\npages within the target: {len(timings) - len(missed)}/{len(timings)}")
    return "\n".join(lines)


def run(dsn: str, messages: int, reuse: str | None, fresh: bool, calls: int, output: Path) -> int:
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.console", *sys.argv[1:]]),
        "calls": calls,
        "warmups": WARMUPS,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        **code_facts(),
        **server_facts(dsn),
        "autovacuum": _setting(dsn, "autovacuum"),
    }
    try:
        seed = seeded(dsn, messages, reuse, fresh)
    except (InvalidTenantId, UnknownTenant) as exc:
        print(f"--reuse: {exc}", file=sys.stderr)
        return 2
    with EventStore(Settings(database_url=dsn)) as store:
        schema = schema_of(store, seed.tenant_id)
        found = samples(dsn, store, seed.tenant_id)
    meta["tenant"] = found.facts
    use_database(dsn)
    todo, skipped = cases(found)
    timings = []
    for case in todo:
        timing = time_case(case, calls)
        timings.append(timing)
        print(f"  {case.label}: p50 {timing.p50:.1f} ms, status {timing.status}", file=sys.stderr, flush=True)
    baseline = raw_baseline(dsn, schema, calls)
    services().store.close()
    print(render(timings, baseline, skipped, seed, meta))
    report = {
        "meta": meta,
        "seed": asdict(seed),
        "pages": [
            {
                "label": t.label,
                "path": t.path,
                "status": t.status,
                "bytes": t.size,
                "p50_ms": t.p50,
                "p95_ms": t.p95,
                "max_ms": t.max,
                "calls_ms": t.ms,
            }
            for t in [*timings, baseline]
        ],
        "not_measured": skipped,
        "target_ms": TARGET_MS,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults written to {output}")
    return 0 if all(t.status == 200 for t in timings) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dsn", help=f"PostgreSQL DSN of an owner role (default: ${DSN_VARIABLE}, else an embedded server)"
    )
    parser.add_argument("--messages", type=int, default=100_000, help="messages in the seeded tenant")
    seeding = parser.add_mutually_exclusive_group()
    seeding.add_argument("--reuse", metavar="TENANT", help="measure this tenant as it is (seeded before)")
    seeding.add_argument("--fresh", action="store_true", help="seed a new tenant even if one of this size is there")
    parser.add_argument("--calls", type=int, default=20, help="timed calls per page")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.messages < 100:
        parser.error("--messages must be at least 100")
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    dsn = args.dsn or os.environ.get(DSN_VARIABLE)
    if dsn:
        return run(dsn, args.messages, args.reuse, args.fresh, args.calls, args.output)
    from eventstore_local.standins.postgres import EmbeddedPostgres

    data_dir = Path(tempfile.mkdtemp(prefix="eventstore-bench-console-"))
    print(
        f"no --dsn or ${DSN_VARIABLE}: starting an embedded PostgreSQL in {data_dir} (the seed goes with it)",
        file=sys.stderr,
    )
    server = EmbeddedPostgres(data_dir)
    try:
        return run(server.dsn, args.messages, args.reuse, args.fresh, args.calls, args.output)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
