"""Nothing lost: 8 writers commit out of order into many streams of 3 tenants while publisher processes
are started and killed (SIGKILL) at random moments, most of them mid-batch. Afterwards every committed
event was published at least once, no rolled-back one was, each stream's events first arrived in
sequence order, and every duplicate straddles a kill (it was delivered before the kill and again after).
Once to the Event Grid stand-in, once to a webhook subscriber that fails half its requests.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import sql

from eventstore import START, EventStore, Settings, StreamState, TenantEvents
from eventstore.store.append_events import append_events
from eventstore_local.standins.eventgrid import EventGridStandIn
from eventstore_local.standins.webhook import WebhookReceiver
from tests.helpers import PROJECT_ROOT, event, feed_checkpoint, random_tenant_id, run_threads

ROOT = PROJECT_ROOT
BATCH_EVENTS = 7
WRITERS = 8
APPENDS_PER_WRITER = 80
KEY = "no-loss-key"
SECRET = "no-loss-webhook-secret"  # noqa: S105 (a test key)
START_GRACE = 0.3
LATE_ARRIVAL = 2.0
"""A killed publisher's last request may still be taken by the stand-in (in this busy test process) this long
after the kill, by then stamped after the next publisher's start."""


@dataclass(frozen=True)
class Arrival:
    event_id: str
    stream: tuple[str, str]  # (tenant, stream id)
    sequence: int
    at: float

    @classmethod
    def of(cls, event: dict[str, Any], at: float) -> Arrival:
        data = event["data"]
        return cls(event["id"], (data["tenantId"], data["streamId"]), data["sequenceNumber"], at)


@dataclass
class Workload:
    store: EventStore
    settings: Settings
    tenants: list[TenantEvents]
    lock: threading.Lock = field(default_factory=threading.Lock)
    committed: dict[str, tuple[tuple[str, str], int]] = field(default_factory=dict)
    rolled_back: set[str] = field(default_factory=set)

    def write(self, index: int) -> None:
        rng = random.Random(1000 + index)
        with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self.settings.app_role)))
            for n in range(APPENDS_PER_WRITER):
                tenant = rng.choice(self.tenants)
                stream_id = f"instance:s{rng.randrange(12)}"
                batch = [event({"writer": index, "n": n}) for _ in range(rng.randint(1, 3))]
                roll_back = rng.random() < 0.1
                with conn.transaction():
                    result = append_events(
                        conn, tenant.placement.schema_name, stream_id, batch, StreamState.ANY,
                        inline_limit=self.settings.inline_payload_limit, max_batch=self.settings.max_batch_size,
                    )  # fmt: skip
                    time.sleep(rng.uniform(0, 0.03))  # commits land out of order
                    if roll_back:
                        raise psycopg.Rollback()
                with self.lock:
                    for e, sequence in zip(batch, result.sequence_numbers, strict=True):
                        if roll_back:
                            self.rolled_back.add(str(e.event_id))
                        else:
                            self.committed[str(e.event_id)] = ((tenant.tenant_id, stream_id), sequence)
                time.sleep(rng.uniform(0, 0.08))


@contextmanager
def killed_publishers(
    env: dict[str, str],
    tenants: list[TenantEvents],
    starts: list[float],
    kills: list[float],
    stop: threading.Event,
    logs: Path,
) -> Iterator[None]:
    """Publisher processes, one at a time, each SIGKILLed after a random while; start and kill times into
    `starts` and `kills`, what each printed into `logs/publisher-<n>.log`."""
    rng = random.Random(7)
    errors: list[BaseException] = []

    def cycle() -> None:
        try:
            while not stop.is_set():
                log = publisher_log(logs, len(starts))
                starts.append(time.time())
                with log.open("wb") as output:
                    process = subprocess.Popen(
                        [*publish_command(tenants), "--loop", "--interval", "0.02"],
                        cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                    )  # fmt: skip
                time.sleep(rng.uniform(0.8, 1.5))  # start-up takes ~0.7 s; then it is mid-work
                if process.poll() is not None:
                    raise RuntimeError("the publisher died by itself: " + log.read_text()[-2000:])
                kills.append(time.time())
                process.send_signal(signal.SIGKILL)
                process.wait(10)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=cycle, name="publisher-killer")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(60)
    if errors:
        raise errors[0]


def publisher_log(logs: Path, index: int) -> Path:
    return logs / f"publisher-{index}.log"


RETRIED = ("will retry", "held:")
"""What a publisher prints when a delivery failed and it sends the batch again (at least once)."""


def run_and_check(
    store: EventStore,
    settings: Settings,
    env: dict[str, str],
    arrivals: Callable[[], list[Arrival]],
    logs: Path,
) -> None:
    tenants = []
    for _ in range(3):
        tenant_id = random_tenant_id()
        store.onboard_tenant(tenant_id)
        tenants.append(store.tenant(tenant_id))
    work = Workload(store, settings, tenants)
    starts: list[float] = []
    kills: list[float] = []
    stop = threading.Event()
    with killed_publishers(env, tenants, starts, kills, stop, logs):
        run_threads(WRITERS, work.write)
        time.sleep(1.0)  # a kill or two after the last commit, too
    assert len(kills) >= 3, "the publisher was never killed mid-run"

    # A last publisher, left to finish: everything committed must now arrive.
    deadline = time.monotonic() + 60
    while not set(work.committed) <= {a.event_id for a in arrivals()}:
        assert time.monotonic() < deadline, "committed events never arrived"
        with publisher_log(logs, len(starts)).open("wb") as output:
            starts.append(time.time())
            subprocess.run(publish_command(tenants), cwd=ROOT, env=env, check=True, stdout=output, stderr=output)
        time.sleep(0.05)

    got = arrivals()
    ids = [a.event_id for a in got]
    assert set(work.committed) <= set(ids)
    assert not (work.rolled_back & set(ids)), "a rolled-back event was published"
    ours = [a for a in got if a.event_id in work.committed]
    assert all(work.committed[a.event_id] == (a.stream, a.sequence) for a in ours)

    # Each stream's events first arrived in sequence order.
    first: dict[str, Arrival] = {}
    for arrival in ours:
        first.setdefault(arrival.event_id, arrival)
    by_stream: dict[tuple[str, str], list[int]] = defaultdict(list)
    for arrival in sorted(first.values(), key=lambda a: a.at):
        by_stream[arrival.stream].append(arrival.sequence)
    for stream, sequence in by_stream.items():
        assert sequence == sorted(sequence) and sequence == list(range(1, len(sequence) + 1)), stream

    # Duplicates only around a kill: the first copy sent by a publisher that was then killed, the second by a
    # later one; so a kill falls between the two copies' arrivals. A request's arrival is stamped when the
    # stand-in starts on it, which in this busy process can be a moment after its sender died: the first copy
    # may be stamped up to LATE_ARRIVAL after the kill. And at most the batch in flight is sent again per kill:
    # the publisher drains its tenants one after another. A same-publisher duplicate is allowed only when that
    # publisher reported the failed delivery it re-sent.
    def sender(at: float) -> int:
        return max(i for i, started in enumerate(starts) if started + START_GRACE <= at)

    seen: dict[str, float] = {}
    duplicates = retried = 0
    for arrival in sorted(ours, key=lambda a: a.at):
        if arrival.event_id not in seen:
            seen[arrival.event_id] = arrival.at
            continue
        first_at = seen[arrival.event_id]
        if any(first_at - LATE_ARRIVAL <= killed <= arrival.at for killed in kills):
            duplicates += 1
            continue
        printed = publisher_log(logs, sender(first_at)).read_text(errors="replace")
        assert sender(first_at) == sender(arrival.at) and any(said in printed for said in RETRIED), (
            f"duplicate of {arrival.event_id} with no kill between its copies ({first_at:.3f}, {arrival.at:.3f}) "
            f"nor a failed delivery; its publisher printed: {printed[-3000:]}"
        )
        retried += 1
    assert duplicates <= BATCH_EVENTS * len(kills), (duplicates, len(kills))
    print(f"{len(work.committed)} committed, {len(kills)} kills, {duplicates} duplicates, {retried} retried")


def publish_command(tenants: list[TenantEvents]) -> list[str]:
    """`eventstore feed publish` for these tenants only (the test database holds other tests' tenants)."""
    return [sys.executable, "-m", "eventstore_local", "feed", "publish", *(f"--tenant={t.tenant_id}" for t in tenants)]


def base_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTSTORE_")}
    env.update(
        EVENTSTORE_DATABASE_URL=settings.database_url,
        EVENTSTORE_FEED_BATCH_EVENTS=str(BATCH_EVENTS),
        EVENTSTORE_FEED_RETRY_SECONDS="2",
    )
    return env


@pytest.mark.slow
def test_nothing_is_lost_when_publishers_are_killed_mid_batch(
    store: EventStore, settings: Settings, tmp_path: Path
) -> None:
    with EventGridStandIn(key=KEY, latency=0.01) as grid:
        env = base_env(settings) | {"EVENTSTORE_EVENTGRID_ENDPOINT": grid.endpoint, "EVENTSTORE_EVENTGRID_KEY": KEY}

        run_and_check(
            store, settings, env, lambda: [Arrival.of(x.event, x.arrived_at) for x in grid.accepted], tmp_path
        )


@pytest.mark.slow
def test_nothing_is_lost_to_a_webhook_that_fails_half_its_requests(
    store: EventStore, settings: Settings, tmp_path: Path
) -> None:
    with WebhookReceiver(SECRET, failure_rate=0.5, seed=3) as hook:
        env = base_env(settings) | {
            "EVENTSTORE_WEBHOOKS__sub__URL": hook.url,
            "EVENTSTORE_WEBHOOKS__sub__SECRET": SECRET,
        }

        run_and_check(
            store, settings, env, lambda: [Arrival.of(x.event, x.arrived_at) for x in hook.deliveries], tmp_path
        )
        statuses = hook.statuses
        assert statuses.count(500) > len(statuses) // 4, "the subscriber did not fail half its requests"
        assert hook.handshakes and set(hook.handshakes) == {"localhost"}


def test_a_publisher_killed_between_delivery_and_checkpoint_sends_that_batch_again(
    store: EventStore, settings: Settings
) -> None:
    tenant_id = random_tenant_id()
    store.onboard_tenant(tenant_id)
    tenant, feed = store.tenant(tenant_id), store.feed(tenant_id)
    ids = []
    for n in range(5):
        new = event({"n": n})
        tenant.append("instance:k", [new])
        ids.append(new.event_id)
    with EventGridStandIn(key=KEY) as grid:
        # The topic takes the batch, but only answers after the publisher is dead.
        grid.hang_next(1, seconds=2.0, accept=True)
        env = base_env(settings) | {"EVENTSTORE_EVENTGRID_ENDPOINT": grid.endpoint, "EVENTSTORE_EVENTGRID_KEY": KEY}
        process = subprocess.Popen(publish_command([tenant]), cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while grid.requests_started < 1:
            assert time.monotonic() < deadline and process.poll() is None, "the publisher sent nothing"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        assert [UUID(e["id"]) for e in grid.wait_for(5, timeout=10)] == ids  # delivered...
        assert feed_checkpoint(feed, "eventgrid") == START  # ...but never checkpointed
        subprocess.run(publish_command([tenant]), cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        assert [UUID(e["id"]) for e in grid.events] == ids + ids  # at least once: the batch again
        assert feed_checkpoint(feed, "eventgrid").global_position >= 5
