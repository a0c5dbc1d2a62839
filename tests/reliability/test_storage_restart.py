"""Azurite (Blob storage and the queues) stopped and started again under the running local host.

While it is down: an append whose payload goes to Blob storage and a read of a Blob-backed payload are
answered 503 with Retry-After, and store nothing; what needs only PostgreSQL (a message posted over HTTP)
is served as usual; the host's ingest queue listener finds the queue service gone, with a message due in the
queue. Once it is back, without a restart of the host: that message and one sent then are stored, the append
refused during the outage is taken when sent again (as new: the 503 had stored nothing), and every payload
reads back byte-exact.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest

from bench.reliability import Answer, Api
from eventstore.functions.ingest import MESSAGES_QUEUE
from tests.helpers import wait_for
from tests.reliability.conftest import (
    BOUND,
    Environment,
    assert_unavailable,
    enqueue,
    messages_queue,
    onboarded,
)

HELD = 6  # seconds: longer than Azurite takes to stop (~5 s), shorter than the outage
LARGE = 300_000  # over the inline limit (256 KiB): the payload goes to Blob storage
LISTENER_DOWN = f"queue {MESSAGES_QUEUE}: cannot receive messages"
"""What the host's queue listener logs when it finds the queue service gone (eventstore_local/host/queues.py)."""

pytestmark = pytest.mark.timeout(240)


def large_event() -> tuple[str, bytes, bytes]:
    """An event id, a payload of LARGE bytes of its own (blobs are named by content), and the append's body."""
    event_id = str(uuid4())
    payload = b'{"blob": "%s",  "k" : 1}' % secrets.token_hex(LARGE // 2).encode()
    body = b'{"eventId": "%s", "eventType": "StepCompleted", "payload": %s}' % (event_id.encode(), payload)
    return event_id, payload, body


def append(api: Api, body: bytes) -> Answer:
    return api.host.request(
        "POST", f"/api/tenants/{api.tenant_id}/instances/storage/events", body, timeout=BOUND,
        **{"Content-Type": "application/json"},
    )  # fmt: skip


def stored_message(api: Api, body: bytes) -> Callable[[], Answer | None]:
    """Reads the event a message is stored as (its operationId): the answer once it is there, else None."""
    event_id = json.loads(body)["operationId"]

    def read() -> Answer | None:
        answer = api.get_event(event_id)
        return answer if answer.status == 200 else None

    return read


def times_logged(api: Api, line: str) -> int:
    return api.host.log_path.read_text(errors="replace").count(line)


def test_blob_and_queue_paths_answer_clearly_while_azurite_is_down_and_recover_without_a_host_restart(
    environment: Environment, figures: dict[str, Any]
) -> None:
    started = time.monotonic()
    azurite, api = environment.azurite, onboarded(environment.host)
    earlier_id, earlier_payload, earlier_body = large_event()
    assert append(api, earlier_body).status == 201
    refused_id, refused_payload, refused_body = large_event()
    listener_down = times_logged(api, LISTENER_DOWN)
    # A message in the queue through the outage: invisible until storage is going down (as one the listener
    # had not taken yet), due while it is down.
    waiting = api.envelope()
    enqueue(messages_queue(azurite), waiting, visibility_timeout=HELD)

    azurite.stop()
    try:
        large = append(api, refused_body)
        assert_unavailable(large)
        read = api.get_event(earlier_id, timeout=BOUND)
        assert_unavailable(read)
        message = api.post_message(timeout=BOUND)  # PostgreSQL alone: storage being down must not matter
        assert message.status == 202, f"{message.status}: {message.body[:300]!r}"
        assert not stored_message(api, waiting)(), "the message due during the outage was taken before it"
        wait_for(
            "the host's ingest queue listener to find the queue service down",
            lambda: times_logged(api, LISTENER_DOWN) > listener_down,
            30,
        )
    finally:
        azurite.start()
    back = time.monotonic()

    # The queue: the message that waited through the outage, and one sent now, are taken by the listener that
    # met the outage.
    sent_now = api.envelope()
    enqueue(messages_queue(azurite), sent_now)
    for body in (waiting, sent_now):
        stored = wait_for("the queued message stored", stored_message(api, body), 60, every=0.1)
        assert stored.body == body
    queued_stored = time.monotonic()

    # Blob storage: the refused append had stored nothing, so sending it again appends it as new.
    again = append(api, refused_body)
    assert again.status == 201, f"{again.status}: {again.body[:300]!r}"
    assert again.json()["repeated"] is False, "an append answered 503 had been stored"
    for event_id, payload in ((earlier_id, earlier_payload), (refused_id, refused_payload)):
        answer = api.get_event(event_id)
        assert answer.status == 200 and answer.body == payload, f"{event_id}: {answer.status}"

    figures.update(
        large_append_503_seconds=round(large.seconds, 2),
        blob_read_503_seconds=round(read.seconds, 2),
        message_while_down_seconds=round(message.seconds, 2),
        queued_message_stored_seconds_after_restart=round(queued_stored - back, 2),
        run_seconds=round(time.monotonic() - started, 1),
    )
