"""16 HTTP clients post messages at once, every fifth a redelivery of a message sent before (by any client,
possibly still in flight): each message is stored exactly once, every redelivery is answered with the first
delivery's positions, and every stored event is announced on the change feed (the Event Grid stand-in the
host publishes to).

The feed is at least once (docs/feed.md, "Guarantees": a publisher that dies between a delivery and its
checkpoint sends that batch again; subscribers dedupe on `id`), so an event announced twice is allowed and
counted; an event never announced, or an announcement of anything not stored, is not.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import pytest

from bench.reliability import Api
from tests.helpers import run_threads, wait_for
from tests.reliability.conftest import BOUND, Environment, audit_events, onboarded, sha256

CLIENTS = 16
REQUESTS = 30  # per client: 480 in all, 96 of them redeliveries
REDELIVERY_EVERY = 5

pytestmark = pytest.mark.timeout(240)


@dataclass
class Load:
    sent: list[bytes]
    """Every distinct message, in the order first sent."""
    answers: list[tuple[bytes, int, bytes]]
    """(message, status, answer) of every request."""
    seconds: float


def post_concurrently(api: Api) -> Load:
    """CLIENTS keep-alive clients, REQUESTS each; every REDELIVERY_EVERY-th request a message sent before."""
    lock = threading.Lock()
    load = Load([], [], 0.0)

    def client(index: int) -> None:
        rng = random.Random(index)
        connection = http.client.HTTPConnection("127.0.0.1", api.host.port, timeout=BOUND)
        mine: list[tuple[bytes, int, bytes]] = []
        try:
            for n in range(REQUESTS):
                with lock:
                    if n % REDELIVERY_EVERY == REDELIVERY_EVERY - 1 and load.sent:
                        body = rng.choice(load.sent)  # any client's: its first delivery may still be in flight
                    else:
                        body = api.envelope()
                        load.sent.append(body)
                try:
                    connection.request(
                        "POST", f"/api/tenants/{api.tenant_id}/messages", body, {"Content-Type": "application/json"}
                    )
                    response = connection.getresponse()
                    mine.append((body, response.status, response.read()))
                except OSError:  # no answer within the client's timeout, or the connection dropped
                    connection.close()
                    mine.append((body, 0, b""))
        finally:
            connection.close()
            with lock:
                load.answers.extend(mine)

    started = time.monotonic()
    run_threads(CLIENTS, client)
    load.seconds = time.monotonic() - started
    return load


def test_sixteen_clients_with_redeliveries_store_each_message_once_and_announce_each_on_the_feed(
    environment: Environment, figures: dict[str, Any]
) -> None:
    started = time.monotonic()
    api = onboarded(environment.host)
    source = f"/tenants/{api.tenant_id}"
    load = post_concurrently(api)

    refused = Counter(status for _, status, _ in load.answers if status != 202)
    assert not refused, f"answers other than 202 (0: none within {BOUND:g} s): {dict(refused)}"
    by_operation: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for body, _, answer in load.answers:
        by_operation[json.loads(body)["operationId"]].append(json.loads(answer))
    for operation_id, accepted in by_operation.items():
        firsts = [a for a in accepted if not a["repeated"]]
        assert len(firsts) == 1, f"{operation_id}: {len(firsts)} deliveries answered as the first"
        positions = {(a["eventId"], a["sequenceNumber"], a["globalPosition"]) for a in accepted}
        assert len(positions) == 1, f"{operation_id}: redeliveries answered other positions than the first: {positions}"

    def announced() -> list[dict[str, Any]]:
        return [a.event for a in environment.grid.accepted if a.event.get("source") == source]

    acknowledged = {a[0]["eventId"] for a in by_operation.values()}
    wait_for(
        "every acknowledged event announced on the change feed",
        lambda: acknowledged <= {a["id"] for a in announced()},
        60,
    )
    all_announced = time.monotonic()

    # Stored: each message once, byte-exact, the audit stream gapless.
    envelopes = {json.loads(body)["operationId"]: body for body in load.sent}
    events = audit_events(api)
    stored = Counter(e["correlationId"] for e in events)
    assert not {o: n for o, n in stored.items() if n > 1}, "messages stored more than once"
    lost, unknown = set(envelopes) - set(stored), set(stored) - set(envelopes)
    assert not lost and not unknown, f"{len(lost)} messages lost, {len(unknown)} stored that were never sent"
    assert [e["eventId"] for e in events if e["payloadSha256"] != sha256(envelopes[e["correlationId"]])] == []
    assert sorted(e["sequenceNumber"] for e in events) == list(range(1, len(envelopes) + 1))

    # Announced: every stored event, at its stored position; nothing else for this tenant.
    ids = {e["eventId"]: e for e in events}
    feed = announced()
    assert {a["id"] for a in feed} == set(ids), "the events announced are not the events stored"
    for announcement in feed:
        event, data = ids[announcement["id"]], announcement["data"]
        assert (data["sequenceNumber"], data["globalPosition"]) == (event["sequenceNumber"], event["globalPosition"])

    figures.update(
        clients=CLIENTS,
        requests=len(load.answers),
        distinct_messages=len(envelopes),
        redeliveries=len(load.answers) - len(envelopes),
        requests_per_second=round(len(load.answers) / load.seconds, 1),
        announcements=len(feed),
        announced_twice=len(feed) - len({a["id"] for a in feed}),
        all_announced_seconds_after_the_last_answer=round(all_announced - started - load.seconds, 2),
        run_seconds=round(time.monotonic() - started, 1),
    )
