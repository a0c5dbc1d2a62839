"""PostgreSQL stopped and started again while clients append through the local host's HTTP API.

Four clients append batches of ten outcome events, each to an instance of its own, and go on through the
outage, waiting the Retry-After of each 503. Two of them then send the same batch again (the same event ids,
which makes the retry safe whatever happened to the first attempt); the other two give it up and send a new
one, so that a batch whose fate the client never learnt stays for the checks. The host is never restarted.
What must hold:
  - every answer is 201 or a 503 problem with Retry-After, and comes before the client's timeout;
  - the outage was felt (some 503s) and, once the database is back, every client is served again;
  - nothing is half-written: each stream holds whole batches only, in the order they were sent, its sequence
    numbers gapless from 1; every acknowledged batch is among them, at the positions its answer gave, with
    its exact bytes. (A batch given up after a 503 may be there, whole, or not at all: a connection lost
    during a COMMIT leaves its outcome unknown to the host too, docs/reliability.md.)
How long the first success took after the database came back is printed (figures), not asserted.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote
from uuid import uuid4

import pytest

from bench.reliability import Answer, Api
from tests.helpers import wait_for
from tests.reliability.conftest import BOUND, RETRY_AFTER, TIMEOUT, Environment, onboarded

CLIENTS = 4
EVENTS_PER_BATCH = 10
OUTAGE = TIMEOUT + 1.5
"""Longer than the host's dependency timeout, so that requests sent while the database is down are answered
503 (a shorter one would see them served when it returns, which tests/http/test_outages.py covers)."""
BEFORE, AFTER = 3, 3
"""Batches every client must have acknowledged before the outage, and again after the database returned."""

pytestmark = pytest.mark.timeout(240)


@dataclass
class Batch:
    event_ids: list[str]
    payloads: list[bytes]
    body: bytes
    answer: dict[str, Any] | None = None
    acknowledged_at: float = 0.0


@dataclass
class Appender:
    """One client: its own instance stream, one batch at a time."""

    api: Api
    index: int
    finish: threading.Event
    abandon: threading.Event
    retries: bool
    """After a 503: True, the same batch again until it is acknowledged; False, a new batch."""
    sent: list[Batch] = field(default_factory=list)
    acknowledged: list[Batch] = field(default_factory=list)
    answers: list[tuple[Answer, float]] = field(default_factory=list)
    """Every answer with when it came (monotonic)."""

    @property
    def instance(self) -> str:
        return f"restart-{self.index}"

    def batch(self, n: int) -> Batch:
        # Spelling JSONB would not keep (spaces, key order, escaped and raw UTF-8, 1.50 and 2e3): a stored
        # copy of the parsed document instead of the bytes would not compare equal.
        payloads = [
            b'{"client":%d, "batch" :%d,"k": %d,  "text":"caf\\u00e9 caf\xc3\xa9", "n":[1.50 ,2e3]}'
            % (self.index, n, k)
            for k in range(EVENTS_PER_BATCH)
        ]
        ids = [str(uuid4()) for _ in payloads]
        items = [
            b'{"eventId": "%s", "eventType": "StepCompleted", "payload": %s}' % (i.encode(), p)
            for i, p in zip(ids, payloads, strict=True)
        ]
        return Batch(ids, payloads, b"[" + b", ".join(items) + b"]")

    def run(self) -> None:
        path = f"/api/tenants/{self.api.tenant_id}/instances/{self.instance}/events"
        pending: Batch | None = None
        n = 0
        while not self.abandon.is_set():
            if pending is None:
                if self.finish.is_set():
                    return
                pending, n = self.batch(n), n + 1
                self.sent.append(pending)
            answer = self.api.host.request(
                "POST", path, pending.body, timeout=BOUND, **{"Content-Type": "application/json"}
            )
            self.answers.append((answer, time.monotonic()))
            if answer.status == 201:
                pending.answer, pending.acknowledged_at = answer.json(), time.monotonic()
                self.acknowledged.append(pending)
                pending = None
            else:  # after the wait asked for (or a moment, when none was given)
                time.sleep(float(answer.headers.get("retry-after", "0.2")))
                if not self.retries:
                    pending = None

    def acknowledged_after(self, moment: float) -> int:
        return sum(1 for b in self.acknowledged if b.acknowledged_at > moment)


def history(api: Api, instance: str) -> list[dict[str, Any]]:
    """The instance's whole history, paged with its continuation."""
    events: list[dict[str, Any]] = []
    base = f"/api/tenants/{api.tenant_id}/instances/{instance}/events?limit=1000"
    path = base
    while True:
        answer = api.host.request("GET", path, timeout=60)
        if answer.status == 404 and answer.json()["type"].endswith(":unknown-instance"):
            return []  # no event at all: what went missing is for the caller to say
        assert answer.status == 200, f"{answer.status}: {answer.body[:300]!r}"
        page = answer.json()
        events += page["events"]
        if not page["continuation"]:
            return events
        path = f"{base}&continuation={quote(page['continuation'])}"


def unexpected(answer: Answer) -> bool:
    """Neither acknowledged nor a well-formed 503 with the host's Retry-After."""
    if answer.status == 201:
        return False
    return not (
        answer.status == 503
        and answer.headers.get("retry-after") == RETRY_AFTER
        and answer.headers.get("content-type", "").startswith("application/problem+json")
    )


def assert_whole_batches_in_order(api: Api, client: Appender) -> None:
    """The client's stream holds whole batches in the order sent, gapless from 1, and every acknowledged batch
    at the positions its answer gave."""
    events = history(api, client.instance)
    assert [e["sequenceNumber"] for e in events] == list(range(1, len(events) + 1)), client.instance
    stored = [e["eventId"] for e in events]
    there = set(stored)
    half = [b.event_ids for b in client.sent if 0 < len(there & set(b.event_ids)) < EVENTS_PER_BATCH]
    assert not half, f"{client.instance}: batches half-written: {half}"
    whole = [i for b in client.sent if b.event_ids[0] in there for i in b.event_ids]
    assert stored == whole, f"{client.instance}: the stream is not the batches sent, whole and in order"
    lost = [b.event_ids for b in client.acknowledged if b.event_ids[0] not in there]
    assert not lost, f"{client.instance}: acknowledged batches not stored: {lost}"
    for batch in client.acknowledged:
        assert batch.answer is not None
        assert batch.answer["eventIds"] == batch.event_ids
        assert batch.answer["sequenceNumbers"] == [stored.index(i) + 1 for i in batch.event_ids]


def assert_read_back_byte_exact(api: Api, clients: list[Appender]) -> dict[str, bytes]:
    """Every acknowledged event's payload, read as a client reads it, is the bytes sent; those by event id."""
    sent = {i: p for c in clients for b in c.acknowledged for i, p in zip(b.event_ids, b.payloads, strict=True)}

    def read(event_id: str) -> tuple[str, int, bytes]:
        answer = api.get_event(event_id)
        return event_id, answer.status, answer.body

    with ThreadPoolExecutor(4) as pool:
        differing = [(i, status) for i, status, body in pool.map(read, sent) if status != 200 or body != sent[i]]
    assert not differing, (
        f"{len(differing)} of {len(sent)} acknowledged events not read back byte-exact: {differing[:5]}"
    )
    return sent


def test_appends_through_a_database_restart_are_answered_clearly_and_none_is_lost_or_half_written(
    environment: Environment, figures: dict[str, Any]
) -> None:
    started = time.monotonic()
    pg, api = environment.pg, onboarded(environment.host)
    finish, abandon = threading.Event(), threading.Event()
    clients = [Appender(api, i, finish, abandon, retries=i % 2 == 0) for i in range(CLIENTS)]
    threads = [threading.Thread(target=c.run, name=f"appender-{c.index}", daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    try:
        wait_for("every client's first appends", lambda: all(len(c.acknowledged) >= BEFORE for c in clients), 60, 0.05)
        pg.stop()
        down = time.monotonic()
        time.sleep(OUTAGE)
        pg.start()
        up = time.monotonic()
        wait_for(
            "every client served again after the database returned, without a restart of the host",
            lambda: all(c.acknowledged_after(up) >= AFTER for c in clients),
            60,
            0.05,
        )
    except BaseException:
        abandon.set()
        raise
    finally:
        finish.set()
        for thread in threads:
            thread.join(BOUND + 10)
        waiting = [t.name for t in threads if t.is_alive()]
        abandon.set()
        for thread in threads:
            thread.join(BOUND + 1)
    assert not waiting, f"clients still waiting for their last batch to be acknowledged: {waiting}"

    answers = [(answer, at) for c in clients for answer, at in c.answers]
    odd = [
        (a.status, round(a.seconds, 1), a.headers.get("retry-after"), a.body[:200]) for a, _ in answers if unexpected(a)
    ]
    assert not odd, (
        f"answers other than 201 or 503 with Retry-After {RETRY_AFTER} (status 0: none in {BOUND:g} s): {odd}"
    )
    unavailable = [a for a, at in answers if a.status == 503]
    assert unavailable, "no request was answered 503: the outage was not felt, so this run proves nothing"

    for client in clients:
        assert_whole_batches_in_order(api, client)
    sent = assert_read_back_byte_exact(api, clients)

    served_again = [at for c in clients for a, at in c.answers if a.status == 201 and at > up]
    figures.update(
        clients=CLIENTS,
        outage_seconds=round(up - down, 1),
        batches_sent=sum(len(c.sent) for c in clients),
        batches_acknowledged=sum(len(c.acknowledged) for c in clients),
        acknowledged_events=len(sent),
        answers_503=len(unavailable),
        slowest_503_seconds=round(max(a.seconds for a in unavailable), 2),
        repeated_acknowledgements=sum(1 for c in clients for b in c.acknowledged if b.answer and b.answer["repeated"]),
        recovery_seconds=round(min(served_again) - up, 2),
        run_seconds=round(time.monotonic() - started, 1),
    )
