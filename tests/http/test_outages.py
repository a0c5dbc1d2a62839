"""Outages, end to end: the local host over real HTTP on a PostgreSQL and an Azurite of this module's own,
which it stops, hangs, restarts and kills (never the machine's shared servers).

Each request is sent with a client timeout of 3x the configured dependency timeout (18 s): an answer at all
is what is tested (status 0 means the client gave up first). It guards against the old behaviour (30 s on
a stopped database, 85 s on stopped Blob storage) with a wide margin; how fast the answers actually come is
measured, not asserted, by `python -m bench.reliability` (docs/reliability.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bench.reliability import Answer, Api, OutageHost, PrivatePostgres, SilentServer, restartable_azurite
from eventstore_local.standins.azurite import Azurite

# EVENTSTORE_DEPENDENCY_TIMEOUT_SECONDS of the host under test: long enough that a database restarted in
# the middle of a request's wait (one test) has seconds to spare on a loaded machine.
TIMEOUT = 6.0
RETRY_AFTER = "7"
BOUND = 3 * TIMEOUT
LARGE = 400_000  # over the inline limit: the payload goes to Blob storage

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def outage_env() -> Iterator[tuple[PrivatePostgres, Azurite, Api]]:
    env = {"EVENTSTORE_DEPENDENCY_TIMEOUT_SECONDS": str(TIMEOUT), "EVENTSTORE_RETRY_AFTER_SECONDS": RETRY_AFTER}
    with (
        PrivatePostgres() as pg,
        restartable_azurite() as azurite,
        OutageHost(pg.dsn, azurite.connection_string, env=env) as host,
    ):
        api = Api(host)
        assert api.onboard_retrying().status in (200, 201), host.log_tail()
        assert api.append_payload(100).status == 201  # the instance whose history the tests read
        yield pg, azurite, api


@pytest.fixture
def pg(outage_env: tuple[PrivatePostgres, Azurite, Api]) -> Iterator[PrivatePostgres]:
    server = outage_env[0]
    yield server
    if not (server.data / "postmaster.pid").exists():
        server.start()  # a failed test leaves the next one a running server


@pytest.fixture
def azurite(outage_env: tuple[PrivatePostgres, Azurite, Api]) -> Iterator[Azurite]:
    emulator = outage_env[1]
    yield emulator
    if not emulator.running:
        emulator.start()


@pytest.fixture
def api(outage_env: tuple[PrivatePostgres, Azurite, Api]) -> Api:
    return outage_env[2]


def assert_unavailable(answer: Answer) -> None:
    assert answer.status == 503, f"{answer.status} after {answer.seconds:.1f} s: {answer.body[:300]!r}"
    assert answer.headers["retry-after"] == RETRY_AFTER
    assert answer.headers["content-type"].startswith("application/problem+json")


def stored_blob(api: Api) -> str:
    answer = api.append_payload(LARGE)
    assert answer.status == 201, answer.body
    event_id: str = answer.json()["eventIds"][0]
    return event_id


def test_a_stopped_database_answers_503_with_retry_after_within_the_bound(pg: PrivatePostgres, api: Api) -> None:
    assert api.post_message().status == 202
    pg.stop()
    assert_unavailable(api.post_message(timeout=BOUND))
    pg.start()
    assert api.post_message(timeout=BOUND).status == 202


def test_the_console_says_a_stopped_database_on_a_page(pg: PrivatePostgres, api: Api) -> None:
    pg.stop()
    answer = api.host.request("GET", f"/api/console/tenants/{api.tenant_id}/messages", timeout=BOUND)
    assert answer.status == 503, f"{answer.status} after {answer.seconds:.1f} s: {answer.body[:300]!r}"
    assert answer.headers["retry-after"] == RETRY_AFTER
    assert answer.headers["content-type"].startswith("text/html")
    text = answer.body.decode()
    assert "The store is unavailable" in text and "Traceback" not in text
    pg.start()
    assert api.host.request("GET", f"/api/console/tenants/{api.tenant_id}/messages", timeout=BOUND).status == 200


def test_a_hung_database_answers_503_within_the_bound(pg: PrivatePostgres, api: Api) -> None:
    pg.stop()
    with SilentServer(pg.port):  # accepts the connection, never says a word
        assert_unavailable(api.history(timeout=BOUND))
    pg.start()
    assert api.history(timeout=BOUND).status == 200


def test_no_request_fails_after_a_database_restart(pg: PrivatePostgres, api: Api) -> None:
    # Several pooled connections, all of which the restart ends.
    threads = [threading.Thread(target=lambda: [api.post_message() for _ in range(5)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pg.restart()
    statuses = [api.post_message(timeout=BOUND).status for _ in range(12)] + [api.history().status]
    assert statuses == [202] * 12 + [200]


def test_a_request_waiting_when_the_database_returns_is_served(pg: PrivatePostgres, api: Api) -> None:
    """The pool gives up reconnecting after half the timeout; a request still waiting then must make it
    try again, rather than wait out its timeout while the database is back."""
    pg.stop()
    answers: list[Answer] = []
    waiting = threading.Thread(target=lambda: answers.append(api.post_message(timeout=BOUND)))
    waiting.start()
    time.sleep(TIMEOUT / 2 + 0.3)  # past the pool's reconnect attempts
    pg.start()
    waiting.join()
    assert answers[0].status == 202, answers[0].body


def test_blob_storage_down_or_hung_answers_503_for_a_large_append_and_a_blob_read(azurite: Azurite, api: Api) -> None:
    event_id = stored_blob(api)
    port = azurite.blob_port
    azurite.stop()
    assert_unavailable(api.append_payload(LARGE, timeout=BOUND))
    assert_unavailable(api.get_event(event_id, timeout=BOUND))
    with SilentServer(port):  # hung: connections accepted, requests never answered
        assert_unavailable(api.get_event(event_id, timeout=BOUND))
    azurite.start()
    assert api.get_event(event_id, timeout=BOUND).status == 200


def test_a_lost_blob_is_410_naming_it_and_listed_in_health(azurite: Azurite, api: Api) -> None:
    from azure.storage.blob import BlobServiceClient

    event_id = stored_blob(api)
    envelope = api.host.request("GET", f"/api/tenants/{api.tenant_id}/events/{event_id}?format=envelope").json()
    container, name = blob_ref_of(envelope, api).split("/")
    # Lost as Azurite loses a blob it had not persisted when killed (docs/reliability.md).
    BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(container, name).delete_blob()

    answer = api.get_event(event_id)
    assert answer.status == 410, answer.body
    problem = answer.json()
    assert problem["type"] == "urn:eventstore:problem:payload-missing"
    assert problem["blobRef"] == f"{container}/{name}" and problem["eventId"] == event_id
    assert f"{container}/{name}" in problem["detail"]

    health = api.health()
    assert health.status == 200, health.body
    listed = [p for p in health.json()["payloadProblems"] if p["eventId"] == event_id]
    assert len(listed) == 1 and listed[0]["problem"] == "missing" and listed[0]["blobRef"] == f"{container}/{name}"
    assert listed[0]["streamId"].endswith("outage")
    assert api.history().status == 200  # the event's metadata stays readable


def blob_ref_of(envelope: dict[str, Any], api: Api) -> str:
    """The blob reference of a stored event: the container is the tenant's, the name the SHA-256."""
    placement = api.host.request("GET", f"/api/tenants/{api.tenant_id}").json()
    return f"{placement['container']}/{envelope['payloadSha256']}"
