"""`python -m bench.feed [--dsn DSN] [--quick] [--events N] [--rounds N] [--latency-seconds S] [--profile]`.

The change feed against its targets, on the same database in the same run:
  1. backlog drain: one tenant's backlog (100,000 events over 1,000 instance streams) published to the
     local Event Grid stand-in (a real HTTP server in this process) through `FeedPublisher` and
     `EventGridSink` (the batch's bytes posted through an azure-core pipeline with the policies of the
     azure-eventgrid client), beside a raw baseline (plain psycopg pages of the same rows, the same slim
     CloudEvents as plain dicts, POSTed with `requests`) and eventsourcing 9.5.6 (its notification log of
     as many events, posted the same way). Rounds in rotating order; figures are
     medians, ratios medians of the per-round ratios. Target: >= 10,000 events/s.
  2. append-to-arrival latency under a steady load (500 appends/s of 1 event each to random instance
     streams of a fresh tenant, due on one schedule, taken by 4 writer threads): the stand-in's arrival
     time minus the time `append` returned, matched by event id, (a) with the nudge after each append
     (plus the 5 s timer, as deployed), (b) with the timer only (a thread publishing the tenant at
     wall-clock multiples of 5 s). Target: p99 <= 1 s with the nudge.
`--profile` then times each step of publishing a page without a profiler (the same batch sent by
`EventGridSink`, by `EventGridSdkSink` — azure-eventgrid's `EventGridPublisherClient.send`, the path of
EVENTSTORE_EVENTGRID_CLIENT=sdk — and by `requests`), drains the backlog's last 20,000 events through
`EventGridSink` and through `EventGridSdkSink`, and once more through `EventGridSink` under a sampling
profiler (where the draining thread's wall time goes; the stand-in's busiest frames). Prints a table; writes
bench/results/feed-latest.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any
from uuid import uuid4

import psycopg
from azure.core.credentials import AzureKeyCredential
from psycopg import sql

from bench.facts import code_facts, server_facts
from bench.feed_baselines import PAGE, Drain, EventSourcingFeed, Poster, RawFeed, measure
from bench.timing import median
from eventstore import EventStore, EventType, NewEvent, Settings
from eventstore.feed.cloudevents import to_cloudevent
from eventstore.feed.nudge import Nudger
from eventstore.feed.publisher import FeedPublisher, TenantRun
from eventstore.feed.sinks import Batch, EventGridSdkSink, EventGridSink, Sink, encode
from eventstore.models import START, Checkpoint
from eventstore_local.standins.eventgrid import EventGridStandIn

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "feed-latest.json"
DSN_VARIABLE = "EVENTSTORE_BENCH_DATABASE_URL"
KEY = "bench-feed-key"
EVENTS, QUICK_EVENTS = 100_000, 2_000
STREAMS = 1000
APPEND_BATCH = 100
RATE = 500.0
LATENCY_SECONDS, QUICK_LATENCY_SECONDS = 20.0, 3.0
TIMER_PERIOD = 5.0
WRITERS = 4
START_AFTER_TICK = 0.1
PROFILE_EVENTS = 20_000
TARGET_DRAIN = 10_000.0
TARGET_P99 = 1.0
PAYLOAD = b'{"stepId":"step-7","outcome":"completed","output":{"approved":true,"score":0.92,"notes":"bench"}}'
DRAIN_KEYS = ("store", "raw", "es")
LABELS = {
    "store": "store: FeedPublisher + EventGridSink (azure-core pipeline)",
    "raw": "raw: psycopg pages + dicts + requests.post",
    "es": "eventsourcing 9.5.6: select_notifications + dicts + requests.post",
}


# --- the stand-in's CPU ---------------------------------------------------------------------------------


class StandInMeter:
    """CPU of the stand-in's handler threads.

    `ThreadingHTTPServer` serves each connection on a thread of its own; after every request this records
    that thread's CPU time so far (`time.thread_time`, which includes reading the request line and headers),
    so the sum over the threads is the stand-in's CPU. Wraps the stand-in's request handler (`_handle`):
    bench-only instrumentation, nothing else changes.
    """

    def __init__(self, grid: EventGridStandIn) -> None:
        self._lock = threading.Lock()
        self._latest: dict[threading.Thread, float] = {}
        original: Callable[[Any], None] = grid._handle

        def handle(handler: Any) -> None:
            original(handler)
            with self._lock:
                self._latest[threading.current_thread()] = time.thread_time()

        setattr(grid, "_handle", handle)  # noqa: B010 (an instance attribute shadowing the method)

    def cpu(self) -> float:
        with self._lock:
            return sum(self._latest.values())


# --- the backlog -----------------------------------------------------------------------------------------


def new_tenant(store: EventStore) -> str:
    tenant_id = uuid4().hex + uuid4().hex  # a Marain client tenant id: 64 lowercase hex
    store.onboard_tenant(tenant_id)
    return tenant_id


def step_completed(instance: str) -> NewEvent:
    return NewEvent(
        event_id=uuid4(),
        event_type=EventType.STEP_COMPLETED,
        payload=PAYLOAD,
        workflow_id="wf-bench",
        workflow_instance_id=instance,
    )


def populate(store: EventStore, tenant_id: str, events: int, streams: int) -> None:
    """`events` spread evenly over `streams` instance streams, one append of up to 100 events per call."""
    tenant = store.tenant(tenant_id)
    per_stream = max(1, events // streams)
    written = 0
    while written < events:
        instance = uuid4().hex
        in_stream = min(per_stream, events - written)
        for first in range(0, in_stream, APPEND_BATCH):
            count = min(APPEND_BATCH, in_stream - first)
            tenant.append(f"instance:{instance}", [step_completed(instance) for _ in range(count)])
        written += in_stream


def checkpoint_before(dsn: str, schema: str, index: int) -> Checkpoint:
    """The checkpoint after which the backlog's `index`-th event (0-based, feed order) comes next."""
    if index <= 0:
        return START
    statement = sql.SQL(
        "SELECT e.transaction_id::text::bigint, e.global_position FROM {} AS e"
        " ORDER BY e.transaction_id, e.global_position OFFSET %s LIMIT 1"
    ).format(sql.Identifier(schema, "events"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(statement, (index - 1,)).fetchone()
    if row is None:
        raise ValueError(f"the backlog has no event {index - 1}")
    return Checkpoint(int(row[0]), int(row[1]))


def check_arrivals(grid: EventGridStandIn, expected: int, what: str) -> None:
    accepted = grid.accepted
    distinct = len({a.event["id"] for a in accepted})
    if len(accepted) != expected or distinct != expected:
        raise AssertionError(
            f"{what}: the stand-in accepted {len(accepted)} events ({distinct} distinct), not {expected}"
        )


# --- drains ----------------------------------------------------------------------------------------------


@dataclass
class Contenders:
    """The store and both baselines over the same backlog, and the stand-in they post to."""

    dsn: str
    store: EventStore
    grid: EventGridStandIn
    meter: StandInMeter
    tenant_id: str
    schema: str
    events: int
    raw: RawFeed
    es: EventSourcingFeed
    poster: Poster
    settings: Settings
    sinks_made: int = 0

    def sink(self, label: str, kind: type[EventGridSink | EventGridSdkSink] = EventGridSink) -> Sink:
        # A sink name of its own: a checkpoint of its own, at START.
        self.sinks_made += 1
        name = f"eventgrid-{label}-{self.sinks_made}"
        return kind(self.grid.endpoint, AzureKeyCredential(KEY), timeout=10, name=name)

    def drain_store(self, skip: int = 0, sink: Sink | None = None) -> Drain:
        """`FeedPublisher.publish_tenant` from START (or after the first `skip` events) until caught up."""
        sink = sink or self.sink("round")
        if skip:
            with self.store.feed(self.tenant_id).session(sink.name) as session:
                if session is None:
                    raise RuntimeError(f"the feed lock of {sink.name} is held elsewhere")
                session.complete_batch(self.checkpoint(skip))
        publisher = FeedPublisher(self.store, [sink], settings=self.settings)

        def run() -> tuple[int, int]:
            result = publisher.publish_tenant(self.tenant_id)
            (sink_run,) = result.sinks
            if sink_run.error or not sink_run.caught_up:
                raise RuntimeError(f"publisher did not drain: {sink_run}")
            return result.published, sink_run.requests

        try:
            return self._measured(run, skip, "store")
        finally:
            publisher.close()

    def drain_raw(self, skip: int = 0) -> Drain:
        after = self.checkpoint(skip)
        before = self.poster.requests
        return self._measured(lambda: (self.raw.drain(self.poster, after), self.poster.requests - before), skip, "raw")

    def drain_es(self, skip: int = 0) -> Drain:
        start = self.es.position_of(skip)
        before = self.poster.requests
        return self._measured(lambda: (self.es.drain(self.poster, start), self.poster.requests - before), skip, "es")

    def drain(self, key: str, skip: int = 0) -> Drain:
        return {"store": self.drain_store, "raw": self.drain_raw, "es": self.drain_es}[key](skip)

    def checkpoint(self, skip: int) -> Checkpoint:
        return checkpoint_before(self.dsn, self.schema, skip)

    def _measured(self, run: Callable[[], tuple[int, int]], skip: int, what: str) -> Drain:
        self.grid.clear()
        result = measure(run, self.meter.cpu)
        check_arrivals(self.grid, self.events - skip, what)
        self.grid.clear()
        return result


def run_drains(contenders: Contenders, rounds: int, warmup: int) -> dict[str, list[Drain]]:
    """Each contender drains the whole backlog once per round, in an order rotating from round to round."""
    for key in DRAIN_KEYS:  # warm up: imports, pools, prepared statements, connections
        contenders.drain(key, skip=contenders.events - warmup)
    drains: dict[str, list[Drain]] = {key: [] for key in DRAIN_KEYS}
    for number in range(rounds):
        print(f"round {number + 1}/{rounds}", file=sys.stderr, flush=True)
        shift = number % len(DRAIN_KEYS)
        for key in DRAIN_KEYS[shift:] + DRAIN_KEYS[:shift]:
            drain = contenders.drain(key)
            drains[key].append(drain)
            print(
                f"  {LABELS[key]:<66} {drain.rate:>9,.0f} events/s ({drain.seconds:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    return drains


# --- latency ---------------------------------------------------------------------------------------------


class RunLog:
    """What each publisher run of one kind (nudged or timer) did: events, whether it ended with events
    waiting behind an older open transaction (the feed's horizon), whether another run held the lock."""

    def __init__(self, publish: Callable[[str], TenantRun]) -> None:
        self._publish = publish
        self._lock = threading.Lock()
        self.runs: list[tuple[float, int, bool, bool]] = []
        """(seconds, published, waiting, locked) per run."""

    def __call__(self, tenant_id: str) -> TenantRun:
        started = time.perf_counter()
        run = self._publish(tenant_id)
        with self._lock:
            self.runs.append((time.perf_counter() - started, run.published, run.waiting, run.locked))
        return run

    def summary(self) -> dict[str, Any]:
        with self._lock:
            runs = list(self.runs)
        return {
            "runs": len(runs),
            "events": sum(r[1] for r in runs),
            "ended_waiting": sum(1 for r in runs if r[2]),
            "found_locked": sum(1 for r in runs if not r[3]),
            "seconds_max": max((r[0] for r in runs), default=0.0),
            "seconds": [round(r[0], 3) for r in runs] if len(runs) <= 20 else None,
        }


class Timer:
    """The timer trigger's stand-in: `publish()` at every wall-clock multiple of `period` seconds."""

    def __init__(self, publish: Callable[[], object], period: float) -> None:
        self._publish = publish
        self._period = period
        self._stop = threading.Event()
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._loop, name="feed-timer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            now = time.time()
            tick = (math.floor(now / self._period) + 1) * self._period
            if self._stop.wait(tick - now):
                return
            try:
                self._publish()
            except Exception as exc:  # reported by the caller
                self.errors.append(exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


@dataclass
class Latency:
    mode: str
    label: str
    appended: int
    arrived: int
    seconds: float
    """How long the writers ran."""
    latencies: list[float] = field(repr=False)
    """Arrival at the stand-in minus the append's return, per event (first arrival)."""
    appends: list[float] = field(repr=False)
    """How long each `append` call took."""
    requests: int = 0
    """Requests the stand-in answered during the run."""
    cpu_cores: float = 0.0
    """CPU of this process (writers, publisher, stand-in) while the writers ran, in cores."""
    nudged: dict[str, Any] | None = None
    """`RunLog.summary()` of the nudged runs (None without the nudge)."""
    timer: dict[str, Any] = field(default_factory=dict)
    """`RunLog.summary()` of the timer's runs."""

    @property
    def rate(self) -> float:
        return self.appended / self.seconds if self.seconds > 0 else 0.0

    def quantile(self, q: float) -> float:
        return percentile(self.latencies, q) if self.latencies else math.nan

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "appended": self.appended,
            "arrived": self.arrived,
            "missing": self.appended - self.arrived,
            "writer_seconds": self.seconds,
            "append_rate": self.rate,
            "writers": WRITERS,
            "requests": self.requests,
            "events_per_request": self.arrived / self.requests if self.requests else None,
            "process_cpu_cores": self.cpu_cores,
            "latency_seconds": {
                "p50": self.quantile(0.50),
                "p90": self.quantile(0.90),
                "p99": self.quantile(0.99),
                "max": max(self.latencies) if self.latencies else math.nan,
                "mean": sum(self.latencies) / len(self.latencies) if self.latencies else math.nan,
            },
            "append_call_ms": {
                "p50": percentile(self.appends, 0.50) * 1000 if self.appends else math.nan,
                "p99": percentile(self.appends, 0.99) * 1000 if self.appends else math.nan,
            },
            "nudged_runs": self.nudged,
            "timer_runs": self.timer,
        }


def percentile(values: Sequence[float], quantile: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]


class PacedWriters:
    """`total` single-event appends due at `rate` per second from a shared schedule, taken by whichever of
    `WRITERS` threads is free: the load stays at `rate` when one append stalls (on the GIL, or a commit)."""

    def __init__(self, store: EventStore, tenant_id: str, rate: float, total: int, nudger: Nudger | None) -> None:
        self.tenant_id = tenant_id
        self.tenant = store.tenant(tenant_id)
        self.rate = rate
        self.total = total
        self.nudger = nudger
        self.instances = [uuid4().hex for _ in range(STREAMS)]
        self.appended: dict[str, float] = {}
        self.appends: list[float] = []
        self.errors: list[BaseException] = []
        self._next = 0
        self._lock = threading.Lock()
        self._started = 0.0

    def _take(self) -> int | None:
        with self._lock:
            number = self._next
            self._next += 1
        return number if number < self.total else None

    def _write(self, seed: int) -> None:
        chooser = random.Random(seed)
        try:
            while (number := self._take()) is not None:
                pause = self._started + number / self.rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                instance = chooser.choice(self.instances)
                event = step_completed(instance)
                clock = time.perf_counter()
                self.tenant.append(f"instance:{instance}", [event])
                returned = time.time()
                self.appends.append(time.perf_counter() - clock)
                self.appended[str(event.event_id)] = returned
                if self.nudger is not None:
                    self.nudger.nudge(self.tenant_id)
        except BaseException as exc:  # reported by run()
            self.errors.append(exc)

    def run(self) -> float:
        """Write everything; returns how long it took."""
        self._started = time.perf_counter()
        threads = [threading.Thread(target=self._write, args=(7 + i,), name=f"writer-{i}") for i in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if self.errors:
            raise self.errors[0]
        return time.perf_counter() - self._started


def run_latency(
    store: EventStore, grid: EventGridStandIn, *, nudge: bool, seconds: float, rate: float, period: float
) -> Latency:
    """Paced writers on a fresh tenant; every event's arrival at the stand-in minus its append's return."""
    mode = "nudge" if nudge else "timer"
    label = f"nudge after each append (+ {period:g} s timer)" if nudge else f"timer only ({period:g} s period)"
    print(f"latency, {label}: {rate:g} appends/s for {seconds:g} s", file=sys.stderr, flush=True)
    tenant_id = new_tenant(store)
    sink = EventGridSink(grid.endpoint, AzureKeyCredential(KEY), timeout=10)
    publisher = FeedPublisher(store, [sink])
    nudged = RunLog(lambda t: publisher.publish_tenant(t, retry_seconds=1.0, skip_failing=True))  # as deployed
    timed = RunLog(publisher.publish_tenant)
    nudger = Nudger(nudged) if nudge else None
    writers = PacedWriters(store, tenant_id, rate, max(1, round(seconds * rate)), nudger)
    grid.clear()
    timer = Timer(lambda: timed(tenant_id), period)
    try:
        # The writers start just after a tick, so that every run sees the same phase: the first events
        # wait a whole period for the timer (without the nudge).
        now = time.time()
        time.sleep((math.floor(now / period) + 1) * period + START_AFTER_TICK - now)
        cpu = time.process_time()
        writer_seconds = writers.run()
        cpu = time.process_time() - cpu
        try:
            grid.wait_for(writers.total, timeout=2 * period + 30)
        except TimeoutError as exc:
            print(f"  {exc}", file=sys.stderr, flush=True)
    finally:
        timer.stop()
        if nudger is not None:
            nudger.close()
        publisher.close()
    if timer.errors:
        raise timer.errors[0]
    first: dict[str, float] = {}
    for accepted in grid.accepted:
        first.setdefault(str(accepted.event["id"]), accepted.arrived_at)
    requests = len(grid.requests)
    grid.clear()
    latencies = [first[event_id] - at for event_id, at in writers.appended.items() if event_id in first]
    result = Latency(
        mode,
        label,
        len(writers.appended),
        len(latencies),
        writer_seconds,
        latencies,
        writers.appends,
        requests,
        cpu / writer_seconds,
        nudged.summary() if nudge else None,
        timed.summary(),
    )
    print(
        f"  {result.rate:,.0f} appends/s; p50 {result.quantile(0.5) * 1000:,.0f} ms, "
        f"p99 {result.quantile(0.99) * 1000:,.0f} ms, {result.appended - result.arrived} missing; "
        f"timer runs {result.timer['seconds']} s; nudged runs {result.nudged}",
        file=sys.stderr,
        flush=True,
    )
    return result


# --- profile ---------------------------------------------------------------------------------------------


Frame = tuple[str, str]
"""(file path with forward slashes, function name)."""
Pattern = tuple[str, str | None]
"""(path suffix, function name or None for any)."""

# Where the drain thread's time goes. A sample of the thread draining the backlog (a thread with a frame of
# eventstore/feed/publisher.py that is not waiting on a lock or a future) counts for the first category, in
# this order, with a frame in its stack ("waiting" looks at the innermost frame only).
DRAIN_CATEGORIES: tuple[tuple[str, tuple[Pattern, ...]], ...] = (
    ("HTTP: waiting for the stand-in's answer (socket read; the stand-in works meanwhile)", ()),
    ("HTTP: azure-core pipeline and its policies, requests, urllib3, http.client",
     (("azure/core/", None), ("requests/", None), ("urllib3/", None), ("http/client.py", None))),
    ("ours: to_cloudevent (a plain dict per event)", (("eventstore/feed/cloudevents.py", None),)),
    ("ours: encode (json.dumps per event, for the byte limit) and Batch.body",
     (("eventstore/feed/sinks.py", "encode"), ("eventstore/feed/sinks.py", "body"))),
    ("store: read_feed, checkpoints, lock (psycopg + PostgreSQL)",
     (("eventstore/store/", None), ("psycopg/", None), ("psycopg_pool/", None))),
)  # fmt: skip
_WAITING_CATEGORY = 0
_OTHER = "other: publisher loop, batching, tenacity"
_IDLE = (("threading.py", "wait"), ("concurrent/futures/_base.py", None), ("queue.py", None))


def _matches(frame: Frame, pattern: Pattern) -> bool:
    path, function = pattern
    return (path in frame[0]) and (function is None or frame[1] == function)


class StackSampler:
    """A sampling profiler of this process's threads (`sys._current_frames`, every `interval` seconds), for
    the thread draining the backlog and the stand-in's handler threads, whichever threads those are (the
    publisher drains on a pool thread of its own). Samples are wall time: a thread waiting for the GIL is
    sampled where it waits. Its own cost is ~one stack walk per thread per sample."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.drain: dict[str, int] = {}
        self.standin: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stack-sampler", daemon=True)

    def __enter__(self) -> StackSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            self.samples += 1
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                stack: list[Frame] = []
                walker: FrameType | None = frame
                while walker is not None:
                    stack.append((walker.f_code.co_filename.replace("\\", "/"), walker.f_code.co_name))
                    walker = walker.f_back
                self._classify(stack)

    def _classify(self, stack: list[Frame]) -> None:
        if any(f[0].endswith("eventstore_local/standins/eventgrid.py") and f[1] == "_handle" for f in stack):
            innermost = f"{Path(stack[0][0]).name}:{stack[0][1]}"
            self.standin[innermost] = self.standin.get(innermost, 0) + 1
            return
        if not any(f[0].endswith("eventstore/feed/publisher.py") for f in stack):
            return
        if any(_matches(stack[0], idle) for idle in _IDLE):
            return  # a thread waiting for the drain (the caller), not draining
        category = _OTHER
        for index, (label, patterns) in enumerate(DRAIN_CATEGORIES):
            if index == _WAITING_CATEGORY:
                if stack[0][0].endswith("socket.py") and stack[0][1] == "readinto":
                    category = label
                    break
            elif any(_matches(frame, pattern) for frame in stack for pattern in patterns):
                category = label
                break
        self.drain[category] = self.drain.get(category, 0) + 1

    def breakdown(self) -> list[tuple[str, int]]:
        order = [label for label, _ in DRAIN_CATEGORIES] + [_OTHER]
        return [(label, self.drain.get(label, 0)) for label in order]

    def top_standin(self, limit: int = 8) -> list[tuple[str, int]]:
        return sorted(self.standin.items(), key=lambda item: item[1], reverse=True)[:limit]


def _per_event(seconds: list[float], events: int) -> float:
    return median(seconds) / events * 1e6


def page_steps(contenders: Contenders, skip: int, pages: int) -> dict[str, float]:
    """µs per event of each step of publishing a page of 1,000, timed without a profiler (median of `pages`)."""
    pipeline = contenders.sink("steps")
    sdk = contenders.sink("steps-sdk", EventGridSdkSink)
    sends = ("eventgrid_sink", "sdk_sink", "requests")
    times: dict[str, list[float]] = {k: [] for k in ("read", "to_cloudevent", "encode", *sends)}
    standin = 0.0
    after = contenders.checkpoint(skip)
    feed = contenders.store.feed(contenders.tenant_id)
    try:
        # As the publisher reads: on a held session (a sink name of its own, so no real sink is locked).
        with feed.session("bench-steps") as session:
            if session is None:
                raise RuntimeError("the feed lock of bench-steps is held elsewhere")
            for _ in range(pages):
                clock = time.perf_counter()
                entries = session.read(after, PAGE).events
                times["read"].append(time.perf_counter() - clock)
                if len(entries) < PAGE:
                    break
                clock = time.perf_counter()
                events = [to_cloudevent(contenders.tenant_id, e) for e in entries]
                times["to_cloudevent"].append(time.perf_counter() - clock)
                clock = time.perf_counter()
                batch = Batch(events, [encode(e) for e in events])
                times["encode"].append(time.perf_counter() - clock)
                senders: tuple[Callable[[Batch], object], ...] = (
                    pipeline.send,
                    sdk.send,
                    lambda b: contenders.poster.post(b.events),
                )
                for key, send in zip(sends, senders, strict=True):
                    cpu = contenders.meter.cpu()
                    clock = time.perf_counter()
                    send(batch)
                    times[key].append(time.perf_counter() - clock)
                    standin += contenders.meter.cpu() - cpu
                after = entries[-1].checkpoint
    finally:
        pipeline.close()
        sdk.close()
        contenders.grid.clear()
    steps = {key: _per_event(values, PAGE) for key, values in times.items() if values}
    sent = sum(len(times[key]) for key in sends)
    if sent:
        steps["standin_cpu"] = standin / (sent * PAGE) * 1e6
    return steps


def profile(contenders: Contenders, events: int) -> dict[str, Any]:
    skip = max(0, contenders.events - events)
    events = contenders.events - skip
    print(f"profile: the backlog's last {events:,} events", file=sys.stderr, flush=True)
    steps = page_steps(contenders, skip, pages=min(10, events // PAGE))
    plain = contenders.drain_store(skip)
    sdk = contenders.drain_store(skip, contenders.sink("profile-sdk", EventGridSdkSink))
    with StackSampler() as sampler:
        sampled = contenders.drain_store(skip)
    return {
        "events": events,
        "page_steps_us_per_event": steps,
        "drain_unprofiled": asdict(plain) | {"rate": plain.rate},
        "drain_sdk_client": asdict(sdk) | {"rate": sdk.rate},
        "drain_sampled": asdict(sampled) | {"rate": sampled.rate},
        "sampler_ticks": sampler.samples,
        "drain_thread_samples": sampler.breakdown(),
        "standin_samples_top": sampler.top_standin(),
    }


# --- report ----------------------------------------------------------------------------------------------


def drain_summary(drains: dict[str, list[Drain]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, rounds in drains.items():
        out[key] = {
            "label": LABELS[key],
            "events_per_second": median([d.rate for d in rounds]),
            "rounds": [d.rate for d in rounds],
            "seconds": [d.seconds for d in rounds],
            "cpu_us_per_event": median([d.cpu_seconds / d.events * 1e6 for d in rounds]),
            "standin_cpu_us_per_event": median([d.standin_cpu_seconds / d.events * 1e6 for d in rounds]),
            "requests": [d.requests for d in rounds],
            "events": rounds[0].events,
        }
    store = drains["store"]
    ratios = {}
    for key in ("raw", "es"):
        per_round = [s.rate / b.rate for s, b in zip(store, drains[key], strict=True) if b.rate > 0]
        ratios[f"store/{key}"] = {"ratio": median(per_round), "per_round": per_round}
    out["ratios"] = ratios
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def render(drains: dict[str, Any], latencies: list[Latency], profiled: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        f"PostgreSQL {meta.get('server_version', '?')} ({meta.get('database', '?')}), fsync={meta.get('fsync')}, "
        f"synchronous_commit={meta.get('synchronous_commit')}; {meta['cpus']} CPUs; stand-in in this process",
        f"code: {meta.get('git_head', '?')} + uncommitted {meta.get('eventstore_uncommitted', '?')}; load average "
        f"{meta.get('load_average_at_start')} at start, {meta.get('load_average_at_end')} at end",
        "",
        f"backlog drain: {meta['events']:,} events over {meta['streams']:,} streams, {meta['rounds']} rounds",
        f"{'contender':<66} {'median':>9}  {'CPU µs/ev':>9} {'stand-in':>8}   rounds (events/s)",
    ]
    for key in DRAIN_KEYS:
        d = drains[key]
        rounds = ", ".join(f"{r:,.0f}" for r in d["rounds"])
        lines.append(
            f"{d['label']:<66} {d['events_per_second']:>9,.0f}  {d['cpu_us_per_event']:>9.0f} "
            f"{d['standin_cpu_us_per_event']:>8.0f}   [{rounds}]"
        )
    for name, ratio in drains["ratios"].items():
        per_round = " ".join(f"{r:.2f}" for r in ratio["per_round"])
        lines.append(f"ratio {name:<60} {ratio['ratio']:>9.2f}   per round {per_round}")
    verdict = "met" if drains["store"]["events_per_second"] >= TARGET_DRAIN else "MISSED"
    lines.append(f"target: store >= {TARGET_DRAIN:,.0f} events/s: {verdict}")
    lines += [
        "",
        f"append-to-arrival latency, {WRITERS} writer threads sharing one schedule, 1 event per append",
        f"{'publishing':<40} {'appends/s':>9} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7}"
        f" {'missing':>7} {'append p50/p99 ms':>17} {'ev/request':>10} {'CPU cores':>9}  publisher runs",
    ]
    for latency in latencies:
        summary = latency.summary()
        s, calls = summary["latency_seconds"], summary["append_call_ms"]
        timer = latency.timer
        runs = f"timer {timer['runs']} (longest {timer['seconds_max']:.1f} s)"
        if latency.nudged is not None:
            n = latency.nudged
            runs += f", nudged {n['runs']:,} ({n['ended_waiting']:,} ended waiting, {n['found_locked']:,} locked out)"
        lines.append(
            f"{latency.label:<40} {latency.rate:>9,.0f} {_ms(s['p50']):>7} {_ms(s['p90']):>7} "
            f"{_ms(s['p99']):>7} {_ms(s['max']):>7} {latency.appended - latency.arrived:>7}"
            f" {calls['p50']:>8.2f}/{calls['p99']:<8.2f} {summary['events_per_request'] or 0:>10.1f}"
            f" {latency.cpu_cores:>9.2f}  {runs}"
        )
    nudged = next((x for x in latencies if x.mode == "nudge"), None)
    if nudged is not None:
        verdict = "met" if nudged.quantile(0.99) <= TARGET_P99 else "MISSED"
        lines.append(f"target: p99 <= {TARGET_P99:g} s with the nudge: {verdict}")
    if profiled:
        lines += ["", f"profile of a drain of {profiled['events']:,} events"]
        steps = profiled["page_steps_us_per_event"]
        lines.append(
            "  µs per event, pages of 1,000, no profiler: " + ", ".join(f"{k} {v:.1f}" for k, v in steps.items())
        )
        for key, label in (
            ("drain_unprofiled", "FeedPublisher + EventGridSink (azure-core pipeline)"),
            ("drain_sdk_client", "FeedPublisher + EventGridSdkSink (SDK client, =sdk)"),
            ("drain_sampled", "FeedPublisher + EventGridSink, sampled"),
        ):
            lines.append(f"  {label:<52} {profiled[key]['rate']:>9,.0f} events/s")
        sdk_rate = profiled["drain_sdk_client"]["rate"]
        if sdk_rate > 0:
            lines.append(f"  EventGridSink / EventGridSdkSink: {profiled['drain_unprofiled']['rate'] / sdk_rate:.1f}x")
        rows = profiled["drain_thread_samples"]
        total = sum(count for _, count in rows)
        lines.append(f"  the draining thread, {total:,} samples (wall time):")
        for label, count in rows:
            lines.append(f"    {count / total * 100 if total else 0:>5.1f} %  {label}")
        top = profiled["standin_samples_top"]
        lines.append("  stand-in handler samples, innermost frame: " + ", ".join(f"{n} {c}" for n, c in top))
    return "\n".join(lines)


# --- running ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    events: int
    streams: int
    rounds: int
    latency_seconds: float
    rate: float
    timer_period: float
    profile_events: int | None
    output: Path
    quick: bool
    keep: bool


def run(dsn: str, options: Options) -> int:
    started = time.perf_counter()
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.feed", *sys.argv[1:]]),
        "quick": options.quick,
        "events": options.events,
        "streams": options.streams,
        "rounds": options.rounds,
        "latency_seconds": options.latency_seconds,
        "append_rate": options.rate,
        "timer_period": options.timer_period,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        **{name: version(name) for name in ("psycopg", "azure-core", "azure-eventgrid", "requests", "eventsourcing")},
        "load_average_at_start": os.getloadavg()[0],
        **code_facts(),
        **server_facts(dsn),
    }
    store = EventStore(Settings(database_url=dsn))
    settings = store.settings.model_copy(update={"feed_run_seconds": 3600.0})
    es: EventSourcingFeed | None = None
    raw: RawFeed | None = None
    poster: Poster | None = None
    try:
        with EventGridStandIn(key=KEY) as grid:
            meter = StandInMeter(grid)
            tenant_id = new_tenant(store)
            print(
                f"populating: {options.events:,} events over {options.streams:,} streams (tenant {tenant_id})",
                file=sys.stderr,
                flush=True,
            )
            clock = time.perf_counter()
            populate(store, tenant_id, options.events, options.streams)
            meta["populate_seconds"] = round(time.perf_counter() - clock, 1)
            schema = store.tenant(tenant_id).placement.schema_name
            es = EventSourcingFeed(dsn, tenant_id)
            clock = time.perf_counter()
            es.populate(options.events, options.streams, PAYLOAD)
            meta["populate_eventsourcing_seconds"] = round(time.perf_counter() - clock, 1)
            raw = RawFeed(dsn, tenant_id, schema)
            raw.check_equivalent()
            poster = Poster(grid.endpoint, KEY)
            contenders = Contenders(
                dsn, store, grid, meter, tenant_id, schema, options.events, raw, es, poster, settings
            )
            meta["tenant"] = tenant_id
            drains = drain_summary(run_drains(contenders, options.rounds, warmup=min(2000, options.events // 4)))
            latencies = [
                run_latency(
                    store,
                    grid,
                    nudge=nudge,
                    seconds=options.latency_seconds,
                    rate=options.rate,
                    period=options.timer_period,
                )
                for nudge in (True, False)
            ]
            profiled = profile(contenders, options.profile_events) if options.profile_events else {}
    except BaseException:
        print("stopping: the stand-in, pools and the eventsourcing schema", file=sys.stderr)
        raise
    finally:
        if poster is not None:
            poster.close()
        if raw is not None:
            raw.close()
        if es is not None:
            es.close(drop=not options.keep)
        store.close()
    meta["duration_seconds"] = round(time.perf_counter() - started, 1)
    meta["load_average_at_end"] = os.getloadavg()[0]
    print(render(drains, latencies, profiled, meta))
    document = {
        "meta": meta,
        "drain": drains,
        "latency": {x.mode: x.summary() for x in latencies},
        "profile": profiled,
        "targets": {
            "drain_events_per_second": TARGET_DRAIN,
            "drain_met": drains["store"]["events_per_second"] >= TARGET_DRAIN,
            "nudge_p99_seconds": TARGET_P99,
            "nudge_p99_met": any(x.mode == "nudge" and x.quantile(0.99) <= TARGET_P99 for x in latencies),
        },
    }
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults written to {options.output} ({meta['duration_seconds']} s)")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.feed",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dsn", help=f"PostgreSQL DSN (default: ${DSN_VARIABLE}, else an embedded server)")
    quick = f"a smoke test: {QUICK_EVENTS:,}-event backlog, {QUICK_LATENCY_SECONDS:g} s latency runs"
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--events", type=int, help=f"backlog size (default {EVENTS:,})")
    parser.add_argument("--streams", type=int, help=f"instance streams of the backlog (default {STREAMS:,})")
    parser.add_argument("--rounds", type=int, help="drains of the backlog per contender (default 3, quick 2)")
    parser.add_argument(
        "--latency-seconds", type=float, help=f"writer time per latency run (default {LATENCY_SECONDS:g})"
    )
    parser.add_argument("--rate", type=float, default=RATE, help=f"appends per second in the latency runs ({RATE:g})")
    parser.add_argument("--timer-period", type=float, default=TIMER_PERIOD, help=f"timer period ({TIMER_PERIOD:g} s)")
    parser.add_argument(
        "--profile", action="store_true", help=f"afterwards, profile a drain of {PROFILE_EVENTS:,} events"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    parser.add_argument("--keep", action="store_true", help="keep the eventsourcing baseline's schema")
    return parser.parse_args(argv)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    events = args.events or (QUICK_EVENTS if args.quick else EVENTS)
    streams = args.streams or (max(1, events // APPEND_BATCH) if args.quick else STREAMS)
    options = Options(
        events=events,
        streams=min(streams, events),
        rounds=args.rounds or (2 if args.quick else 3),
        latency_seconds=args.latency_seconds or (QUICK_LATENCY_SECONDS if args.quick else LATENCY_SECONDS),
        rate=args.rate,
        timer_period=args.timer_period,
        profile_events=min(PROFILE_EVENTS, events) if args.profile else None,
        output=args.output,
        quick=args.quick,
        keep=args.keep,
    )
    if options.events < 2 * PAGE or options.rounds < 1 or options.rate <= 0 or options.timer_period <= 0:
        raise SystemExit("--events must be >= 2000, --rounds >= 1, --rate and --timer-period > 0")
    signal.signal(signal.SIGTERM, _terminate)
    dsn = args.dsn or os.environ.get(DSN_VARIABLE)
    if dsn:
        return run(dsn, options)
    from eventstore_local.standins.postgres import EmbeddedPostgres

    data_dir = Path(tempfile.mkdtemp(prefix="eventstore-bench-feed-pg-"))
    print(f"no --dsn or ${DSN_VARIABLE}: starting an embedded PostgreSQL in {data_dir}", file=sys.stderr)
    server = EmbeddedPostgres(data_dir)
    try:
        return run(server.dsn, options)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
