"""The local host SIGKILLed while the ingest queue holds a backlog, then started again on the same database and
Azurite: every message is stored exactly once.

The backlog is 300 `workflow-messages` messages: 240 distinct ones, every fourth of them sent twice (the
same envelope, so the same operationId: what a sender that retries, or a queue that delivers twice,
produces), half of those copies right behind their original so that both are processed at once. The host is
killed while it works through the backlog: the messages it held then were taken from the queue but not
deleted, and come back once their lock lapses (30 s, the local host's `LOCK_SECONDS`), some of them already
stored. The restarted host must store what was not stored and nothing twice;
no message may end in the poison queue.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import shutil
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient
from psycopg import sql

from bench.reliability import Api, OutageHost, PrivatePostgres
from eventstore import EventStore, Settings
from eventstore.functions.ingest import MESSAGES_QUEUE
from eventstore_local.standins.azurite import Azurite
from tests.helpers import random_tenant_id, run_threads, wait_for
from tests.reliability.conftest import (
    HOST_SETTINGS,
    audit_events,
    database_of_its_own,
    enqueue,
    messages_queue,
    sha256,
)

DISTINCT = 240
REDELIVERED_EVERY = 4  # every 4th message is sent twice: 60 redeliveries, 300 queue messages
KILL_AFTER = 40
"""Stored events after which the host is killed: early in the backlog, so most of it is left for the restart."""
SENDERS = 4
SECOND_ATTEMPT = re.compile(r"message \S+ \(attempt 2\b")
"""How the host logs a message on its second delivery, processed or failed (eventstore_local/host/queues.py)."""

pytestmark = pytest.mark.timeout(240)


def backlog(api: Api) -> tuple[dict[str, bytes], list[bytes]]:
    """The distinct envelopes by operationId, and the queue's messages in the order they are sent."""
    rng = random.Random(11)
    envelopes: dict[str, bytes] = {}
    messages: list[bytes] = []
    late: list[bytes] = []
    for n in range(DISTINCT):
        body = api.envelope()
        envelopes[json.loads(body)["operationId"]] = body
        messages.append(body)
        if n % REDELIVERED_EVERY == REDELIVERED_EVERY - 1:
            # Half right behind the original (the same receive batch: processed at once), half at the end.
            (messages if rng.random() < 0.5 else late).append(body)
    return envelopes, messages + late


def send_all(azurite: Azurite, messages: list[bytes]) -> None:
    """Enqueued by a few senders at once (one alone is slow: ~20 ms a message)."""

    def send(index: int) -> None:
        queue = messages_queue(azurite)
        for body in messages[index::SENDERS]:
            enqueue(queue, body)

    run_threads(SENDERS, send)


def queued(queue: QueueClient) -> int:
    """Messages in the queue, visible or held by a receiver (0 when the queue does not exist)."""
    try:
        return queue.get_queue_properties().approximate_message_count or 0
    except ResourceNotFoundError:
        return 0


def test_a_host_killed_with_a_backlog_stores_every_queued_message_exactly_once_after_its_restart(
    private_pg: PrivatePostgres, figures: dict[str, Any]
) -> None:
    started = time.monotonic()
    with (
        database_of_its_own(private_pg) as dsn,
        contextlib.ExitStack() as cleanup,
        ThreadPoolExecutor(1) as beside,  # left first: nothing is cleaned up under a start still running
    ):
        # Azurite starts while the tenant is onboarded, and the host while the backlog is sent: the suite's
        # time goes mostly to waiting for the killed host's locks to lapse, so nothing else waits needlessly.
        azurite = Azurite(in_memory=True)  # its own: no other host takes its messages
        cleanup.callback(azurite.stop)
        starting = beside.submit(azurite.start)
        tenant_id = random_tenant_id()
        with EventStore(Settings(database_url=dsn)) as store:
            schema = store.onboard_tenant(tenant_id).schema_name
        starting.result()
        host = OutageHost(dsn, azurite.connection_string, env=HOST_SETTINGS)
        cleanup.callback(shutil.rmtree, host.folder, ignore_errors=True)
        cleanup.callback(host.stop)
        api = Api(host, tenant_id)
        envelopes, messages = backlog(api)
        queue = messages_queue(azurite)
        poison = QueueClient.from_connection_string(azurite.connection_string, f"{MESSAGES_QUEUE}-poison")
        queue.create_queue()  # the host creates it as it starts; the backlog may be sent first

        count = sql.SQL("SELECT count(*) FROM {}.events").format(sql.Identifier(schema))
        conn = cleanup.enter_context(psycopg.connect(dsn, autocommit=True))

        def stored() -> int:
            row = conn.execute(count).fetchone()
            return int(row[0]) if row else 0

        first = beside.submit(host.start)
        send_all(azurite, messages)
        first.result()
        wait_for("the host to work through the backlog", lambda: stored() >= KILL_AFTER, 60, every=0.02)
        assert host.process is not None
        host.process.kill()  # SIGKILL: no lease released, no message settled
        host.process.wait(30)
        at_kill = stored()
        assert at_kill < len(envelopes), "the host drained the whole backlog before it was killed"

        host.start()  # the same database, the same Azurite
        # Settled: every message deleted, including those held by the killed host once their lock lapsed.
        wait_for("every queued message settled after the restart", lambda: queued(queue) == 0, 120, every=0.5)
        events = audit_events(api)
        poisoned = queued(poison)
        # The restarted host's log: how many messages the killed one held came back to it.
        redelivered_after_kill = len(SECOND_ATTEMPT.findall(host.log_path.read_text(errors="replace")))

    by_operation = Counter(e["correlationId"] for e in events)
    duplicated = {o: n for o, n in by_operation.items() if n > 1}
    assert not duplicated, f"{len(duplicated)} messages stored more than once: {list(duplicated.items())[:5]}"
    missing = set(envelopes) - set(by_operation)
    assert not missing, f"{len(missing)} of {len(envelopes)} messages lost: {sorted(missing)[:5]}"
    assert set(by_operation) == set(envelopes), "events stored that were never sent"
    assert all(e["eventId"] == e["correlationId"] for e in events), "an event's id is not its message's operationId"
    altered = [e["eventId"] for e in events if e["payloadSha256"] != sha256(envelopes[e["eventId"]])]
    assert not altered, f"stored bytes differ from the message's: {altered[:5]}"
    assert sorted(e["sequenceNumber"] for e in events) == list(range(1, len(envelopes) + 1))
    assert poisoned == 0, f"{poisoned} messages ended in the poison queue"
    assert redelivered_after_kill > 0, "no message held by the killed host came back: the kill found none in flight"

    figures.update(
        queue_messages=len(messages),
        distinct_messages=len(envelopes),
        redeliveries_sent=len(messages) - len(envelopes),
        stored_when_killed=at_kill,
        second_deliveries_after_restart=redelivered_after_kill,
        stored_in_the_end=len(events),
        run_seconds=round(time.monotonic() - started, 1),
    )
