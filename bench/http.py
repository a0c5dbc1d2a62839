"""`python -m bench.http [--dsn DSN] [--quick] [--seconds N] [--rounds N] [--profile]`.

Ingest and the history read over HTTP through the project's local Functions host, beside the store's
direct figures on the same database in the same run, so the HTTP overhead is a ratio (http / direct).
Starts Azurite and `python -m eventstore_local host` on a free port, onboards a fresh tenant with
`PUT /api/tenants/{id}`, then measures in rotating order, for several rounds:
  - `POST /api/tenants/{t}/messages` of a Marain trigger envelope (fresh operationId each), 1 client and
    8 concurrent clients (threads, one keep-alive connection each), beside `TenantEvents.append` of the
    same envelope to the audit stream with 1 and 8 writer threads;
  - `GET /api/tenants/{t}/instances/{id}/events?limit=1000` of a 1,000-event instance, beside
    `read_stream` of the same 1,000 events;
  - the latency (p50, p99) of single POSTs and single appends with 1 client.
Figures are medians of the rounds, ratios medians of the per-round ratios. Prints a table; writes
bench/results/http-latest.json. `--profile` then records the host with py-spy under each HTTP load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from uuid import UUID, uuid4

import psycopg

from bench.facts import code_facts, server_facts
from bench.http_client import (
    ROOT,
    Category,
    HttpClient,
    LocalHost,
    process_cpu_seconds,
    py_spy,
    read_stacks,
    start_py_spy,
    summarise,
    top_self,
)
from bench.payloads import envelope as history_payload
from bench.timing import Op, median, threads_for
from eventstore import (
    AUDIT_STREAM_ID,
    EventStore,
    EventType,
    NewEvent,
    Settings,
    StreamState,
    TenantEvents,
    instance_stream_id,
)

RESULTS = Path(__file__).resolve().parent / "results" / "http-latest.json"
DSN_VARIABLE = "EVENTSTORE_BENCH_DATABASE_URL"
CLIENTS = 8
POOL_MAX_SIZE = 10
HISTORY_EVENTS = 1000
HISTORY_BATCH = 100
SAMPLE = ROOT / "eventstore_local" / "samples" / "envelope-trigger.json"
_SAMPLE_TENANT = "75b9261673c2714681f14c97bc0439fb45a820d625de884bb5a127d6b1104f82"
_SAMPLE_TRIGGER_ID = "d56528bd-8af1-4044-a241-15479afca111"
_SAMPLE_OPERATION_ID = "7e7033bf-3e51-4df6-94d0-a51fc0f9afc3"
_SAMPLE_INSTANCE_ID = "eddee27b-52e7-4c33-a82e-891fc4b359e4"
POST_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
GET_HEADERS = {"Accept": "application/json"}


# --- the payload ---------------------------------------------------------------------------------------


class Envelopes:
    """eventstore_local/samples/envelope-trigger.json with the tenant's id and a fresh trigger id and operationId
    per message (the indentation kept: ~700 bytes, as the benchmark of the store uses)."""

    def __init__(self, tenant_id: str) -> None:
        text = SAMPLE.read_text(encoding="utf-8").replace(_SAMPLE_TENANT, tenant_id)
        head, rest = text.split(_SAMPLE_TRIGGER_ID, 1)
        middle, tail = rest.split(_SAMPLE_OPERATION_ID, 1)
        self._head, self._middle, self._tail = head.encode(), middle.encode(), tail.encode()

    def make(self) -> tuple[UUID, bytes]:
        operation_id = uuid4()
        body = b"".join((self._head, str(uuid4()).encode(), self._middle, str(operation_id).encode(), self._tail))
        return operation_id, body


# --- measuring -----------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One measurement: its rate, calls, CPU and, for single-caller cases, each call's latency."""

    rate: float
    calls: int
    elapsed: float
    own_cpu: float
    """CPU seconds of this process (user + system): the HTTP client, or the store's caller."""
    host_cpu: tuple[float, float] | None
    """User and system CPU seconds of the host process."""
    latencies_ms: list[float] | None = None


class Meter:
    """CPU of this process and of the host process around a measurement."""

    def __init__(self, host_pid: int) -> None:
        self.host_pid = host_pid
        self._own = 0.0
        self._host: tuple[float, float] | None = None

    def start(self) -> None:
        self._own = time.process_time()
        self._host = process_cpu_seconds(self.host_pid)

    def stop(self, events: int, calls: int, elapsed: float, latencies: list[float] | None = None) -> Sample:
        now, before = process_cpu_seconds(self.host_pid), self._host
        host = (now[0] - before[0], now[1] - before[1]) if now is not None and before is not None else None
        return Sample(events / elapsed, calls, elapsed, time.process_time() - self._own, host, latencies)


def run_single(seconds: float, op: Op, meter: Meter) -> Sample:
    """`op` back to back for `seconds`, each call timed."""
    latencies: list[float] = []
    events = 0
    meter.start()
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline or not latencies:
        before = now
        events += op()
        now = time.perf_counter()
        latencies.append((now - before) * 1000)
    return meter.stop(events, len(latencies), now - start, latencies)


def run_threads(seconds: float, ops: Sequence[Op], meter: Meter) -> Sample:
    """Each op back to back in its own thread for `seconds`; total events per second."""
    events, calls, elapsed = threads_for(seconds, ops, on_start=meter.start)
    return meter.stop(events, calls, elapsed)


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    unit: str
    measure: Callable[[float], Sample]


@dataclass
class Figure:
    key: str
    label: str
    unit: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def rounds(self) -> list[float]:
        return [s.rate for s in self.samples]

    @property
    def median(self) -> float:
        return median(self.rounds)

    def cpu_per_call_us(self, which: str) -> float | None:
        """Median over the rounds of CPU µs per call: `own` (this process), `host` or `host_sys` (its kernel part)."""
        values = []
        for sample in self.samples:
            if which == "own":
                cpu: float | None = sample.own_cpu
            elif sample.host_cpu is None:
                cpu = None
            else:
                cpu = sample.host_cpu[1] if which == "host_sys" else sum(sample.host_cpu)
            if cpu is None or sample.calls == 0:
                return None
            values.append(cpu / sample.calls * 1e6)
        return median(values) if values else None

    def latency_ms(self, quantile: float) -> float | None:
        per_round = [percentile(s.latencies_ms, quantile) for s in self.samples if s.latencies_ms]
        return median(per_round) if per_round else None


def percentile(values: Sequence[float], quantile: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]


# --- the workloads -------------------------------------------------------------------------------------


class HttpBench:
    """The host's routes and the store's direct calls for one fresh tenant and one 1,000-event instance."""

    def __init__(self, host: LocalHost, dsn: str) -> None:
        self.host = host
        self.tenant_id = uuid4().hex + uuid4().hex  # a Marain client tenant id: 64 lowercase hex
        self.instance_id = "bench-" + uuid4().hex
        self.envelopes = Envelopes(self.tenant_id)
        self.meter = Meter(host.pid)
        self.clients: list[HttpClient] = []
        self.store = EventStore(Settings(database_url=dsn, pool_max_size=POOL_MAX_SIZE))
        self.tenant: TenantEvents | None = None
        self.history_bytes = 0

    def client(self) -> HttpClient:
        client = HttpClient("127.0.0.1", self.host.port)
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.store.close()

    @property
    def messages_path(self) -> str:
        return f"/api/tenants/{self.tenant_id}/messages"

    @property
    def history_path(self) -> str:
        return f"/api/tenants/{self.tenant_id}/instances/{self.instance_id}/events?limit={HISTORY_EVENTS}"

    def setup(self) -> None:
        """Onboard the tenant over HTTP, check one message end to end, write and check the instance."""
        client = self.client()
        status, body = client.request("PUT", f"/api/tenants/{self.tenant_id}")
        if status not in {200, 201}:
            raise RuntimeError(f"PUT /api/tenants/{self.tenant_id}: {status} {body[:500]!r}")
        self.tenant = self.store.tenant(self.tenant_id)
        operation_id, message = self.envelopes.make()
        status, body = client.request("POST", self.messages_path, message, POST_HEADERS)
        answer = json.loads(body) if status == 202 else {}
        if status != 202 or answer.get("eventId") != str(operation_id) or answer.get("repeated"):
            raise RuntimeError(f"POST {self.messages_path}: {status} {body[:500]!r}")
        stream = instance_stream_id(self.instance_id)
        for _ in range(HISTORY_EVENTS // HISTORY_BATCH):
            batch = [
                NewEvent(
                    event_id=uuid4(),
                    event_type=EventType.TRANSITION_COMPLETED,
                    payload=history_payload(),
                    workflow_instance_id=self.instance_id,
                )
                for _ in range(HISTORY_BATCH)
            ]
            self.tenant.append(stream, batch, StreamState.ANY)
        status, body = client.request("GET", self.history_path, headers=GET_HEADERS)
        page = json.loads(body) if status == 200 else {}
        if status != 200 or len(page.get("events", ())) != HISTORY_EVENTS or page.get("continuation"):
            raise RuntimeError(f"GET {self.history_path}: {status} {body[:500]!r}")
        self.history_bytes = len(body)

    # HTTP

    def post_op(self, client: HttpClient) -> Op:
        path, envelopes = self.messages_path, self.envelopes

        def op() -> int:
            _, body = envelopes.make()
            status, answer = client.request("POST", path, body, POST_HEADERS)
            if status != 202:
                raise RuntimeError(f"POST {path}: {status} {answer[:500]!r}")
            return 1

        return op

    def history_op(self, client: HttpClient) -> Op:
        path, expected = self.history_path, self.history_bytes

        def op() -> int:
            # The page was parsed and counted once in setup(); here its status and size are checked, so the
            # client's JSON parsing (~as costly as the host's rendering) does not compete for the CPU.
            status, body = client.request("GET", path, headers=GET_HEADERS)
            if status != 200 or len(body) != expected:
                raise RuntimeError(f"GET {path}: {status}, {len(body)} bytes, expected {expected}: {body[:300]!r}")
            return HISTORY_EVENTS

        return op

    # direct

    def append_op(self) -> Op:
        tenant, envelopes = self.tenant, self.envelopes
        assert tenant is not None

        def op() -> int:
            # The event the ingest function makes of the envelope: same type, payload and metadata columns.
            operation_id, body = envelopes.make()
            event = NewEvent(
                event_id=operation_id,
                event_type=EventType.TRIGGER_RECEIVED,
                payload=body,
                workflow_instance_id=_SAMPLE_INSTANCE_ID,
                correlation_id=str(operation_id),
                source_system="bench",
            )
            tenant.append(AUDIT_STREAM_ID, [event], StreamState.ANY)
            return 1

        return op

    def read_op(self) -> Op:
        tenant, stream = self.tenant, instance_stream_id(self.instance_id)
        assert tenant is not None

        def op() -> int:
            events = tenant.read_stream(stream, 1, limit=HISTORY_EVENTS)
            if len(events) != HISTORY_EVENTS:
                raise AssertionError(f"read {len(events)} events, expected {HISTORY_EVENTS}")
            return len(events)

        return op

    def groups(self) -> list[list[Case]]:
        """Comparable cases, measured back to back; every client and op is made here once."""
        meter = self.meter

        def single(op: Op) -> Callable[[float], Sample]:
            return lambda seconds: run_single(seconds, op, meter)

        def threads(ops: list[Op]) -> Callable[[float], Sample]:
            return lambda seconds: run_threads(seconds, ops, meter)

        return [
            [
                Case("http.ingest_1", "HTTP: POST message, 1 client", "requests/s",
                     single(self.post_op(self.client()))),
                Case("direct.append_1", "direct: append to audit, 1 writer", "events/s", single(self.append_op())),
            ],
            [
                Case("http.ingest_8", f"HTTP: POST message, {CLIENTS} clients", "requests/s",
                     threads([self.post_op(self.client()) for _ in range(CLIENTS)])),
                Case("direct.append_8", f"direct: append to audit, {CLIENTS} writers", "events/s",
                     threads([self.append_op() for _ in range(CLIENTS)])),
            ],
            [
                Case("http.history", f"HTTP: GET history of {HISTORY_EVENTS:,} events", "events/s",
                     single(self.history_op(self.client()))),
                Case("direct.read", f"direct: read_stream of {HISTORY_EVENTS:,} events", "events/s",
                     single(self.read_op())),
            ],
        ]  # fmt: skip


RATIOS = (
    ("ingest, 1 client: HTTP / direct", "http.ingest_1", "direct.append_1"),
    (f"ingest, {CLIENTS} clients: HTTP / direct", "http.ingest_8", "direct.append_8"),
    (f"history of {HISTORY_EVENTS:,}: HTTP / direct", "http.history", "direct.read"),
    (f"HTTP ingest: {CLIENTS} clients / 1", "http.ingest_8", "http.ingest_1"),
    (f"direct append: {CLIENTS} writers / 1", "direct.append_8", "direct.append_1"),
)

# Where the host's Python-level CPU goes (py-spy samples of the thread holding the GIL). A sample counts for
# the first category, in this order, with a frame in its stack: the store's own call (with psycopg under it,
# the work the direct figures do too) first, then the layers of the request from the inside out.
PROFILE_CATEGORIES: tuple[Category, ...] = (
    # psycopg's own frames count here even without a store frame above them: py-spy cannot follow a stack
    # through psycopg's C wait loop, so its generators show up as stacks of their own.
    ("store call: append / read_stream, with psycopg (as direct)",
     ("eventstore/store/:*", "psycopg/:*", "psycopg_pool/:*")),
    ("logging: one line per request (host log)", ("logging/:*",)),
    ("ingest: envelope parsing, tenant check, NewEvent (pydantic)", ("eventstore/ingest/:*",)),
    ("history page: JSON items of the events", ("exchange.py:event_item", "exchange.py:page")),
    ("azure.functions: HttpRequest / HttpResponse objects", ("azure/functions/:*",)),
    ("function glue: params, problem+json, json_response, query", ("eventstore/http/:*", "eventstore/functions/:*",
                                                                   "eventstore/query/:*")),
    ("local host: routing, invoke, reply (eventstore_local.host)", ("eventstore_local/host/:*",)),
    ("http.server: request line, headers (email parser), socket I/O",
     ("http/server.py:*", "http/client.py:*", "email/:*", "socketserver.py:*", "socket.py:*")),
)  # fmt: skip


# --- running -------------------------------------------------------------------------------------------


def run_rounds(groups: list[list[Case]], rounds: int, seconds: float, warmup: float) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    for group in groups:
        for case in group:
            figures[case.key] = Figure(case.key, case.label, case.unit)
            if warmup > 0:
                case.measure(warmup)
    for number in range(rounds):
        print(f"round {number + 1}/{rounds}", file=sys.stderr, flush=True)
        for group in groups:
            shift = number % len(group)  # who goes first rotates: nobody always gets the same place in the drift
            for case in group[shift:] + group[:shift]:
                sample = case.measure(seconds)
                figures[case.key].samples.append(sample)
                print(f"  {case.label:<46} {sample.rate:>10,.0f} {case.unit}", file=sys.stderr, flush=True)
    return figures


def profile_host(bench: HttpBench, groups: list[list[Case]], seconds: float, folder: Path) -> dict[str, Any]:
    """py-spy of the host under each HTTP load (same ops as the rounds); collapsed stacks kept in `folder`."""
    executable = py_spy()
    if executable is None:
        print("py-spy not found: no profile", file=sys.stderr)
        return {}
    profiles: dict[str, Any] = {}
    for case in (c for group in groups for c in group if c.key.startswith("http.")):
        output = folder / f"http-profile-{case.key.removeprefix('http.')}.txt"
        print(f"profiling the host under '{case.label}' ({seconds:g} s)", file=sys.stderr, flush=True)
        spy = start_py_spy(executable, bench.host.pid, seconds, output)
        try:
            time.sleep(0.5)  # py-spy attaches
            sample = case.measure(seconds)
            _, errors = spy.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            errors = b"py-spy did not finish"
        finally:
            if spy.poll() is None:
                spy.kill()
                spy.wait()
        if spy.returncode != 0 or not output.exists():
            print(f"py-spy failed ({spy.returncode}): {errors.decode(errors='replace')[-500:]}", file=sys.stderr)
            continue
        stacks = read_stacks(output)
        profiles[case.key] = {
            "label": case.label,
            "rate_while_profiled": sample.rate,
            "samples": sum(count for _, count in stacks),
            "categories": summarise(stacks, PROFILE_CATEGORIES),
            "top_self": top_self(stacks),
            "raw": str(output),
        }
    return profiles


def ratio_rows(figures: dict[str, Figure]) -> list[dict[str, Any]]:
    rows = []
    for name, top, bottom in RATIOS:
        a, b = figures.get(top), figures.get(bottom)
        if a is None or b is None:
            continue
        per_round = [x / y for x, y in zip(a.rounds, b.rounds, strict=True) if y > 0]
        if per_round:
            rows.append({"name": name, "top": top, "bottom": bottom, "ratio": median(per_round),
                         "per_round": per_round})  # fmt: skip
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def render(
    figures: dict[str, Figure], rows: list[dict[str, Any]], profiles: dict[str, Any], meta: dict[str, Any]
) -> str:
    lines = [
        f"PostgreSQL {meta.get('server_version', '?')} ({meta.get('database', '?')}), fsync={meta.get('fsync')}, "
        f"synchronous_commit={meta.get('synchronous_commit')}; {meta['cpus']} CPUs; {meta['rounds']} rounds x "
        f"{meta['seconds']} s; host pool {POOL_MAX_SIZE}, store pool {POOL_MAX_SIZE}",
        f"code: {meta.get('git_head', '?')} + uncommitted {meta.get('eventstore_uncommitted', '?')}; load average "
        f"{meta.get('load_average_at_start')} at start, {meta.get('load_average_at_end')} at end",
        "",
        f"{'figure':<46} {'median':>21}   rounds",
    ]
    for f in figures.values():
        rounds = ", ".join(f"{r:,.0f}" for r in f.rounds)
        lines.append(f"{f.label:<46} {f.median:>10,.0f} {f.unit:<10}   [{rounds}]")
    lines += ["", f"{'ratio (median of per-round ratios)':<46} {'value':>7}   per round"]
    for row in rows:
        per_round = " ".join(f"{r:.2f}" for r in row["per_round"])
        lines.append(f"{row['name']:<46} {row['ratio']:>7.2f}   {per_round}")
    lines += ["", f"{'latency, 1 caller (median of rounds)':<46} {'p50 ms':>7} {'p99 ms':>7}"]
    for key in ("http.ingest_1", "direct.append_1", "http.history", "direct.read"):
        f = figures[key]
        lines.append(f"{f.label:<46} {_ms(f.latency_ms(0.50)):>7} {_ms(f.latency_ms(0.99)):>7}")
    lines += ["", f"{'CPU per call, µs (median of rounds)':<46} {'host':>8} {'of it sys':>9} {'bench':>8}"]
    for f in figures.values():
        http = f.key.startswith("http.")
        host, system = (f.cpu_per_call_us("host"), f.cpu_per_call_us("host_sys")) if http else (None, None)
        lines.append(f"{f.label:<46} {_us(host):>8} {_us(system):>9} {_us(f.cpu_per_call_us('own')):>8}")
    for profile in profiles.values():
        head = f"host profile under '{profile['label']}' ({profile['samples']:,} samples holding the GIL)"
        lines += ["", head + ":"]
        for label, share in profile["categories"].items():
            lines.append(f"  {share * 100:>5.1f} %  {label}")
        lines.append("  top self frames: " + ", ".join(f"{n} {s * 100:.1f} %" for n, s in profile["top_self"][:8]))
    return "\n".join(lines)


def write_json(path: Path, figures: dict[str, Figure], rows: list[dict[str, Any]], profiles: dict[str, Any],
               meta: dict[str, Any]) -> None:  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": meta,
        "figures": {
            f.key: {
                "label": f.label,
                "unit": f.unit,
                "median": f.median,
                "rounds": f.rounds,
                "latency_ms": {"p50": f.latency_ms(0.50), "p99": f.latency_ms(0.99)},
                "cpu_us_per_call": {
                    "host": f.cpu_per_call_us("host"),
                    "host_system": f.cpu_per_call_us("host_sys"),
                    "bench": f.cpu_per_call_us("own"),
                },
                "calls": [s.calls for s in f.samples],
            }
            for f in figures.values()
        },
        "ratios": rows,
        "host_profiles": profiles,
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def run(dsn: str, *, quick: bool, seconds: float, rounds: int, output: Path, profile: bool) -> int:
    started = time.perf_counter()
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.http", *sys.argv[1:]]),
        "quick": quick,
        "seconds": seconds,
        "rounds": rounds,
        "clients": CLIENTS,
        "history_events": HISTORY_EVENTS,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "load_average_at_start": os.getloadavg()[0],
        **code_facts("eventstore", "function_app.py"),
        **server_facts(dsn),
    }
    print("starting Azurite and the local host", file=sys.stderr, flush=True)
    host = LocalHost(dsn, pool_max_size=POOL_MAX_SIZE)
    bench: HttpBench | None = None
    try:
        host.start()
        print(f"host on 127.0.0.1:{host.port} (pid {host.pid}, log {host.log_path})", file=sys.stderr, flush=True)
        bench = HttpBench(host, dsn)
        bench.setup()
        meta["tenant"] = bench.tenant_id
        meta["history_page_bytes"] = bench.history_bytes
        meta["message_bytes"] = len(bench.envelopes.make()[1])
        groups = bench.groups()
        figures = run_rounds(groups, rounds, seconds, warmup=min(0.5, seconds / 4))
        profiles = profile_host(bench, groups, max(4.0, seconds), output.parent) if profile else {}
    except Exception:
        print(f"--- host log (tail) ---\n{host.log_tail()}", file=sys.stderr)
        raise
    except BaseException:
        print("interrupted: stopping the host and Azurite", file=sys.stderr)
        raise
    finally:
        if bench is not None:
            bench.close()
        host.stop()
        host.cleanup()
    meta["duration_seconds"] = round(time.perf_counter() - started, 1)
    meta["load_average_at_end"] = os.getloadavg()[0]
    rows = ratio_rows(figures)
    print(render(figures, rows, profiles, meta))
    write_json(output, figures, rows, profiles, meta)
    print(f"\nresults written to {output} ({meta['duration_seconds']} s)")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dsn", help=f"PostgreSQL DSN (default: ${DSN_VARIABLE}, else an embedded server)")
    parser.add_argument("--quick", action="store_true", help="short measurements, 2 rounds: a smoke test")
    parser.add_argument("--seconds", type=float, help="duration of each measurement (default 2, quick 0.2)")
    parser.add_argument("--rounds", type=int, help="rounds of every measurement (default 5, quick 2)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, py-spy the host under each HTTP load (stacks kept next to the JSON)",
    )
    return parser.parse_args(argv)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: host and Azurite are stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seconds = args.seconds if args.seconds is not None else (0.2 if args.quick else 2.0)
    rounds = args.rounds if args.rounds is not None else (2 if args.quick else 5)
    if seconds <= 0 or rounds < 1:
        raise SystemExit("--seconds must be > 0 and --rounds >= 1")
    signal.signal(signal.SIGTERM, _terminate)

    def run_on(dsn: str) -> int:
        return run(dsn, quick=args.quick, seconds=seconds, rounds=rounds, output=args.output, profile=args.profile)

    dsn = args.dsn or os.environ.get(DSN_VARIABLE)
    if dsn:
        return run_on(dsn)
    from eventstore_local.standins.postgres import EmbeddedPostgres

    data_dir = Path(tempfile.mkdtemp(prefix="eventstore-bench-http-pg-"))
    print(f"no --dsn or ${DSN_VARIABLE}: starting an embedded PostgreSQL in {data_dir}", file=sys.stderr)
    server = EmbeddedPostgres(data_dir)
    try:
        return run_on(server.dsn)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
