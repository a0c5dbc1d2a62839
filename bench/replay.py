"""`python -m bench.replay [--dsn DSN] [--quick]`: bulk replay to a router queue on Azurite, in one run on one
database, beside a raw loop that enqueues the same bytes with the Azure SDK.

1. Throughput. A tenant holds N received messages (the Marain trigger envelope). A bulk job over all of them
   runs as deployed, in process: the driver queues the due items on the app's replays queue, forwarders (16
   threads, the Functions host's default queue batch) claim each, read the message, verify its hash, mark
   it and send it to the router queue, recording it. From the job's creation to its end. Beside it: a loop
   that sends the same N replay texts (`replay_wire.queue_text`) with one QueueClient, one after the other,
   and the same with 16 threads. Target: replay messages/s >= 0.5 x the raw loop's.
2. Time to the first message: from asking for a bulk replay (as the route does: create the job, drive the
   tenant once) to its first message arriving on the router queue, with the forwarders waiting. Median of 5.
Prints a table; writes bench/results/replay-latest.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any
from uuid import uuid4

import psycopg
from azure.storage.queue import QueueClient
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench.facts import code_facts, server_facts
from eventstore import EventStore, Settings
from eventstore.ingest import record_message
from eventstore.query import catch_up
from eventstore.replay.driver import ReplayDriver, ReplayQueue
from eventstore.replay.forwarder import Forwarder, ForwardMessage
from eventstore.replay.requests import Started, replay_bulk
from eventstore.replay_wire import ReplayDelivery, ReplayMarks, queue_text
from eventstore.settings import RouterSettings
from eventstore.views import MESSAGES
from eventstore.views.messages import MessageFilter
from eventstore_local.samples import sample_bytes
from eventstore_local.standins.azurite import Azurite

RESULTS = Path(__file__).resolve().parent / "results" / "replay-latest.json"
DSN_VARIABLE = "EVENTSTORE_BENCH_DATABASE_URL"
MESSAGES_COUNT, QUICK_MESSAGES = 2000, 40
FORWARDERS = 16
FIRST_ROUNDS, QUICK_FIRST_ROUNDS = 5, 2
RATE = 1000.0


def envelope(tenant_id: str, index: int) -> bytes:
    document = json.loads(sample_bytes("envelope-trigger.json"))
    document.update(tenantId=tenant_id, operationId=str(uuid4()))
    document.setdefault("properties", {})["WorkflowId"] = f"bench-{index % 10}"
    return json.dumps(document, indent=2).encode()


def fill(store: EventStore, count: int) -> tuple[str, list[bytes]]:
    tenant_id = uuid4().hex + uuid4().hex
    store.onboard_tenant(tenant_id)
    bodies = [envelope(tenant_id, i) for i in range(count)]
    for body in bodies:
        record_message(store, tenant_id, body, "bench")
    catch_up(store, tenant_id, MESSAGES, seconds=60)
    return tenant_id, bodies


def fresh_queue(connection: str, prefix: str) -> QueueClient:
    client = QueueClient.from_connection_string(connection, f"{prefix}-{uuid4().hex[:10]}")
    client.create_queue()
    return client


def count_messages(queue: QueueClient) -> int:
    return int(queue.get_queue_properties().approximate_message_count or 0)


def raw_loop(connection: str, texts: list[str], threads: int) -> float:
    """Seconds to put every text on a fresh queue (one client per thread)."""
    queue = fresh_queue(connection, "raw")
    local = threading.local()

    def put(text: str) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = QueueClient.from_connection_string(connection, queue.queue_name)
        client.send_message(text)

    started = time.perf_counter()
    if threads == 1:
        for text in texts:
            queue.send_message(text)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(put, texts))
    seconds = time.perf_counter() - started
    queue.delete_queue()
    return seconds


class Forwarders:
    """FORWARDERS threads reading the replays queue and forwarding, as the Functions host would."""

    def __init__(self, store: EventStore, settings: Settings, connection: str, queue_name: str) -> None:
        self.forwarder = Forwarder(store, settings)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(connection, queue_name), daemon=True) for _ in range(FORWARDERS)
        ]

    def __enter__(self) -> Forwarders:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        self.forwarder.close()

    def _run(self, connection: str, queue_name: str) -> None:
        client = QueueClient.from_connection_string(connection, queue_name)
        while not self._stop.is_set():
            # One message at a time: receive_messages pages on until the queue is empty, so one thread would
            # take every message there is and the others none.
            message = client.receive_message(visibility_timeout=60)
            if message is None:
                self._stop.wait(0.02)
                continue
            item = ForwardMessage.model_validate_json(base64.b64decode(message.content))
            self.forwarder.forward(item)
            client.delete_message(message)
        client.close()


def replay_all(
    store: EventStore, settings: Settings, tenant_id: str, driver: ReplayDriver, done: Callable[[], bool]
) -> float:
    started = time.perf_counter()
    answer = replay_bulk(
        store, settings, tenant_id, MessageFilter(), {}, reason="bench", requested_by="bench", confirm=True, rate=RATE
    )
    assert isinstance(answer, Started)
    while True:
        driver.drive_tenant(tenant_id)
        # The job's own row, not `job_status`: that brings the executions view up to date first, which waits
        # while the forwarders' transactions keep the all-stream's horizon back.
        job = store.replays(tenant_id).job(answer.job.job_id)
        if job is not None and job.state == "finished" and done():
            return time.perf_counter() - started
        time.sleep(0.05)


def first_message(store: EventStore, settings: Settings, driver: ReplayDriver, router: QueueClient) -> float:
    tenant_id, _ = fill(store, 3)
    started = time.perf_counter()
    replay_bulk(store, settings, tenant_id, MessageFilter(), {}, reason="bench", requested_by="bench", rate=RATE)
    driver.drive_tenant(tenant_id)
    while count_messages(router) == 0 and not router.peek_messages(max_messages=1):
        time.sleep(0.005)
    seconds = time.perf_counter() - started
    router.clear_messages()
    return seconds


def run(dsn: str, quick: bool, output: Path) -> int:
    count = QUICK_MESSAGES if quick else MESSAGES_COUNT
    began = time.perf_counter()
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.replay", *sys.argv[1:]]),
        "messages": count,
        "forwarders": FORWARDERS,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        **code_facts(),
        **server_facts(dsn),
    }
    azurite = Azurite().start()
    try:
        connection = azurite.connection_string
        router = fresh_queue(connection, "router")
        work = f"replays-{uuid4().hex[:10]}"
        settings = Settings(
            database_url=dsn,
            queue_connection_string=connection,
            blob_connection_string=connection,
            replay_router=RouterSettings(queue=router.queue_name),
        )
        store = EventStore(settings)
        queue = ReplayQueue(settings, work)
        driver = ReplayDriver(store, settings, lambda: queue)
        print(f"recording {count:,} messages", file=sys.stderr, flush=True)
        tenant_id, bodies = fill(store, count)
        texts = [
            queue_text(
                ReplayDelivery(
                    marks=ReplayMarks(
                        replay_id=uuid4(), original_event_id=uuid4(), idempotency_key=str(uuid4()), tenant_id=tenant_id
                    ),
                    body=body,
                    content_type="application/vnd.marain.workflows.hosted.envelope",
                )
            )
            for body in bodies
        ]
        print("raw loops", file=sys.stderr, flush=True)
        raw_one = raw_loop(connection, texts, 1)
        raw_many = raw_loop(connection, texts, FORWARDERS)
        print("bulk replay", file=sys.stderr, flush=True)
        with Forwarders(store, settings, connection, work):
            replay_seconds = replay_all(store, settings, tenant_id, driver, lambda: count_messages(router) >= count)
            router.clear_messages()
            firsts = [
                first_message(store, settings, driver, router)
                for _ in range(QUICK_FIRST_ROUNDS if quick else FIRST_ROUNDS)
            ]
        results: dict[str, Any] = {
            "meta": {**meta, "seconds": round(time.perf_counter() - began, 1)},
            "raw_loop_per_second": count / raw_one,
            "raw_16_threads_per_second": count / raw_many,
            "replay_per_second": count / replay_seconds,
            "ratio_replay_to_raw_loop": raw_one / replay_seconds,
            "ratio_replay_to_raw_16": raw_many / replay_seconds,
            "first_message_ms": [s * 1000 for s in firsts],
            "first_message_median_ms": median(firsts) * 1000,
        }
        queue.close()
        router.delete_queue()
        store.close()
    finally:
        azurite.stop()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    ratio = results["ratio_replay_to_raw_loop"]
    print(
        f"bulk replay of {count:,} messages to a router queue on Azurite ({FORWARDERS} forwarders, rate {RATE:g}/s)\n"
        f"  raw loop (1 client)      {results['raw_loop_per_second']:8,.0f} messages/s\n"
        f"  raw, {FORWARDERS} threads          {results['raw_16_threads_per_second']:8,.0f} messages/s\n"
        f"  bulk replay              {results['replay_per_second']:8,.0f} messages/s\n"
        f"  ratio replay / raw loop  {ratio:8.2f}   target >= 0.5: {'met' if ratio >= 0.5 else 'MISSED'}\n"
        f"  ratio replay / raw x16   {results['ratio_replay_to_raw_16']:8.2f}\n"
        f"first message at the router after the request: median {results['first_message_median_ms']:.0f} ms "
        f"({', '.join(f'{m:.0f}' for m in results['first_message_ms'])})\n"
        f"code: {meta.get('git_head', '?')}; results written to {output}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", help=f"PostgreSQL DSN (default: ${DSN_VARIABLE})")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 100 messages")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    dsn = args.dsn or os.environ.get(DSN_VARIABLE)
    if not dsn:
        parser.error(f"--dsn or ${DSN_VARIABLE} is needed")
    scratch = f"bench_replay_{uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    try:
        return run(make_conninfo(dsn, dbname=scratch), args.quick, args.output)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(scratch)))


if __name__ == "__main__":
    sys.exit(main())
