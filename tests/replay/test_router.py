"""The replay routers against real ones: an Azurite queue and the HTTP router stand-in. A replay arrives as
the exact stored bytes with its marks, and every way a router can fail is one of the two kinds the replay
job acts on (unavailable: retry; refused: hold), with the secret never in an error."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from uuid import uuid4

import pytest
from azure.storage.queue import QueueClient
from pydantic import SecretStr, ValidationError

from eventstore import Settings
from eventstore.errors import RouterNotConfigured, RouterRefused, RouterUnavailable
from eventstore.replay.router import (
    MAX_QUEUE_TEXT,
    HttpRouter,
    QueueRouter,
    open_router,
    retry_after_seconds,
    router_settings,
)
from eventstore.replay_wire import (
    CompletedStep,
    ReplayDelivery,
    ReplayMarks,
    marks_from_headers,
    parse_queue_message,
    queue_text,
)
from eventstore.settings import RouterSettings
from eventstore_local.standins.azurite import Azurite, connection_string
from eventstore_local.standins.router import RouterStandIn
from tests.helpers import random_tenant_id

SECRET = "router-secret-0f3c9a"  # noqa: S105 (a test key)
JSON_BODY = '{"operationId": "op-1", "amount": 12.5, "note": "naïve café ✓"}'.encode()
BINARY_BODY = bytes(range(256)) + b"\xff\xfe\x00\x80 not utf-8 \xc3\x28"


def delivery(body: bytes = JSON_BODY, content_type: str = "application/json; charset=utf-8") -> ReplayDelivery:
    marks = ReplayMarks(
        replay_id=uuid4(),
        original_event_id=uuid4(),
        idempotency_key="clé-ü-€-日本-op-1",
        tenant_id=random_tenant_id(),
        job_id=uuid4(),
        completed_steps=(
            CompletedStep(name="create-crm-record", idempotency_key="op-1:crm", execution_id="ex-1", step_id="s-1"),
            CompletedStep(name="send-émail", idempotency_key="op-1:email", execution_id="ex-1", step_id="s-2"),
        ),
    )
    return ReplayDelivery(marks=marks, body=body, content_type=content_type)


def closed_port() -> int:
    """A port nothing listens on (bound once to find it free, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def with_router(settings: Settings, router: RouterSettings, **update: object) -> Settings:
    return settings.model_copy(update={"replay_router": router, **update})


# --- which router ------------------------------------------------------------------------------------------


def test_the_tenants_own_router_wins_over_the_default(settings: Settings) -> None:
    tenant, other = random_tenant_id(), random_tenant_id()
    own = RouterSettings(url="https://engine.example/replays", secret=SecretStr(SECRET))
    default = RouterSettings(queue="engine-messages")
    configured = settings.model_copy(update={"replay_router": default, "replay_routers": {tenant: own}})
    assert router_settings(configured, tenant) is own
    assert router_settings(configured, other) is default


def test_no_router_at_all_is_not_configured(settings: Settings) -> None:
    tenant = random_tenant_id()
    bare = settings.model_copy(update={"replay_router": None, "replay_routers": {}})
    with pytest.raises(RouterNotConfigured) as caught:
        router_settings(bare, tenant)
    assert caught.value.tenant_id == tenant
    with pytest.raises(RouterNotConfigured):
        open_router(bare, tenant)
    # Another tenant's router is not a default.
    elsewhere = bare.model_copy(update={"replay_routers": {random_tenant_id(): RouterSettings(queue="q-1")}})
    with pytest.raises(RouterNotConfigured):
        router_settings(elsewhere, tenant)


@pytest.mark.parametrize(
    "fields",
    [
        {"queue": "engine-messages", "url": "https://engine.example/r", "secret": SECRET},  # both targets
        {"url": "https://engine.example/r"},  # a url without its secret
        {"url": "https://engine.example/r", "secret": ""},
        {},  # neither target
    ],
    ids=["queue-and-url", "url-without-secret", "url-with-empty-secret", "neither"],
)
def test_router_settings_name_exactly_one_target(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        RouterSettings.model_validate(fields)


def test_open_router_builds_the_configured_kind(settings: Settings, azurite: Azurite) -> None:
    http = RouterSettings(url="https://engine.example/replays", secret=SecretStr(SECRET))
    router = open_router(with_router(settings, http), random_tenant_id())
    assert isinstance(router, HttpRouter) and router.target == "http:https://engine.example/replays"
    router.close()
    queue = RouterSettings(queue="engine-messages")
    router = open_router(with_router(settings, queue, queue_connection_string=azurite.connection_string), "t")
    assert isinstance(router, QueueRouter) and router.target == "queue:engine-messages"
    router.close()


# --- Storage queue -----------------------------------------------------------------------------------------


@pytest.fixture
def engine_queue(azurite: Azurite) -> Iterator[QueueClient]:
    client = QueueClient.from_connection_string(azurite.connection_string, f"replays-{uuid4().hex[:12]}")
    client.create_queue()
    try:
        yield client
    finally:
        client.delete_queue()
        client.close()


def queue_router(settings: Settings, azurite: Azurite, queue: str, **router: object) -> QueueRouter:
    configured = with_router(
        settings,
        RouterSettings.model_validate({"queue": queue, **router}),
        queue_connection_string=azurite.connection_string,
    )
    opened = open_router(configured, random_tenant_id())
    assert isinstance(opened, QueueRouter)
    return opened


def received(queue: QueueClient) -> list[tuple[ReplayMarks | None, bytes, str | None]]:
    """What an engine reading the queue gets: each message's text base64-decoded, then parsed."""
    return [parse_queue_message(base64.b64decode(m.content)) for m in queue.receive_messages(max_messages=32)]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(JSON_BODY, "application/json; charset=utf-8"), (BINARY_BODY, "application/octet-stream")],
    ids=["json", "binary"],
)
def test_a_queued_replay_carries_the_exact_bytes_and_its_marks(
    settings: Settings, azurite: Azurite, engine_queue: QueueClient, body: bytes, content_type: str
) -> None:
    sent = delivery(body, content_type)
    router = queue_router(settings, azurite, engine_queue.queue_name)
    router.send(sent)
    router.close()
    [(marks, original, received_type)] = received(engine_queue)
    assert original == body
    assert received_type == content_type
    assert marks == sent.marks
    assert marks is not None and marks.idempotency_key == "clé-ü-€-日本-op-1" and len(marks.completed_steps) == 2


def test_the_routers_own_connection_wins_over_the_default(
    settings: Settings, azurite: Azurite, engine_queue: QueueClient
) -> None:
    port = closed_port()
    elsewhere = SecretStr(connection_string(port, port, port))
    router = queue_router(settings, azurite, engine_queue.queue_name, connection=elsewhere)
    with pytest.raises(RouterUnavailable):
        router.send(delivery())
    router.close()
    assert received(engine_queue) == []


def test_a_missing_queue_is_refused_and_not_created(settings: Settings, azurite: Azurite) -> None:
    name = f"missing-{uuid4().hex[:12]}"
    router = queue_router(settings, azurite, name)
    with pytest.raises(RouterRefused) as caught:
        router.send(delivery())
    router.close()
    assert caught.value.status == 404 and f"queue {name} does not exist" in caught.value.reason
    assert caught.value.target == f"queue:{name}"
    probe = QueueClient.from_connection_string(azurite.connection_string, name)
    with pytest.raises(Exception, match="QueueNotFound"):
        probe.get_queue_properties()


def test_a_message_too_large_for_a_queue_is_refused_before_sending(
    settings: Settings, azurite: Azurite, engine_queue: QueueClient
) -> None:
    router = queue_router(settings, azurite, engine_queue.queue_name)
    big = delivery(BINARY_BODY * 200, "application/octet-stream")  # ~54 KB stored, ~97 K characters queued
    with pytest.raises(RouterRefused) as caught:
        router.send(big)
    assert f"({len(big.body)} bytes stored)" in caught.value.reason
    assert "too large for a Storage queue" in caught.value.reason and "HTTP router" in caught.value.reason
    assert engine_queue.peek_messages(max_messages=32) == []

    # The limit is the service's own: the largest message under it is taken, whole.
    low, high = 0, len(big.body)  # a body of `low` bytes fits, one of `high` does not
    while high - low > 1:
        middle = (low + high) // 2
        fitting = len(queue_text(big.model_copy(update={"body": b"\x00" * middle}))) <= MAX_QUEUE_TEXT
        low, high = (middle, high) if fitting else (low, middle)
    fits = ReplayDelivery(marks=big.marks, body=b"\x00" * low, content_type="application/octet-stream")
    assert MAX_QUEUE_TEXT - 16 < len(queue_text(fits)) <= MAX_QUEUE_TEXT
    router.send(fits)
    router.close()
    [(queued_marks, original, _)] = received(engine_queue)
    assert queued_marks == fits.marks and original == fits.body


def test_unreachable_storage_is_unavailable(settings: Settings, azurite: Azurite) -> None:
    port = closed_port()
    router = QueueRouter(
        RouterSettings(queue="engine-messages"), default_connection=connection_string(port, port, port)
    )
    with pytest.raises(RouterUnavailable) as caught:
        router.send(delivery())
    router.close()
    assert caught.value.target == "queue:engine-messages"


def test_a_queue_router_without_any_connection_is_refused() -> None:
    with pytest.raises(RouterRefused, match="no storage connection"):
        QueueRouter(RouterSettings(queue="engine-messages"), default_connection="")
    with pytest.raises(RouterRefused, match="not valid") as caught:
        QueueRouter(RouterSettings(queue="engine-messages", connection=SecretStr("AccountKey=k3y;nonsense")))
    assert "k3y" not in str(caught.value) and caught.value.__suppress_context__


def test_a_wrong_account_key_is_refused(settings: Settings, azurite: Azurite, engine_queue: QueueClient) -> None:
    wrong_key = base64.b64encode(b"not the account key" * 3).decode()
    connection = azurite.connection_string.replace(
        azurite.connection_string.split("AccountKey=")[1].split(";")[0], wrong_key
    )
    router = queue_router(settings, azurite, engine_queue.queue_name, connection=SecretStr(connection))
    with pytest.raises(RouterRefused) as caught:
        router.send(delivery())
    router.close()
    assert caught.value.status == 403
    assert wrong_key not in str(caught.value)


# --- HTTP --------------------------------------------------------------------------------------------------


@pytest.fixture
def standin() -> Iterator[RouterStandIn]:
    with RouterStandIn(SECRET) as server:
        yield server


def http_router(url: str, secret: str = SECRET, **fields: object) -> HttpRouter:
    return HttpRouter(RouterSettings.model_validate({"url": url, "secret": secret, "timeout": 5, **fields}))


def refused_or_unavailable(router: HttpRouter, sent: ReplayDelivery | None = None) -> RouterRefused | RouterUnavailable:
    with pytest.raises((RouterRefused, RouterUnavailable)) as caught:
        router.send(sent or delivery())
    error = caught.value
    assert isinstance(error, RouterRefused | RouterUnavailable)
    assert SECRET not in str(error) and SECRET not in repr(error.args) and SECRET not in error.reason
    return error


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(JSON_BODY, "application/json; charset=utf-8"), (BINARY_BODY, "application/octet-stream")],
    ids=["json", "binary"],
)
def test_an_http_replay_carries_the_exact_bytes_marks_and_secret(
    settings: Settings, standin: RouterStandIn, body: bytes, content_type: str
) -> None:
    sent = delivery(body, content_type)
    router = open_router(
        with_router(settings, RouterSettings(url=standin.url, secret=SecretStr(SECRET))), sent.marks.tenant_id
    )
    router.send(sent)
    router.close()
    [request] = standin.requests
    assert request.body == body
    assert request.path == "/replays"
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["content-type"] == content_type
    assert headers["x-router-secret"] == SECRET
    assert marks_from_headers(request.headers) == sent.marks


def test_the_secret_goes_in_the_configured_header(standin: RouterStandIn) -> None:
    header = "X-Engine-Key"
    standin.secret_header = header
    router = http_router(standin.url, secret_header=header)
    router.send(delivery())
    router.close()
    [request] = standin.requests
    assert {k.lower(): v for k, v in request.headers.items()}["x-engine-key"] == SECRET


def test_a_wrong_secret_is_refused_by_the_router(settings: Settings, standin: RouterStandIn) -> None:
    wrong = "not-the-router-secret"
    router = open_router(
        with_router(settings, RouterSettings(url=standin.url, secret=SecretStr(wrong))), random_tenant_id()
    )
    with pytest.raises(RouterRefused) as caught:
        router.send(delivery())
    router.close()
    assert caught.value.status == 401 and wrong not in str(caught.value)
    assert standin.requests == [] and standin.statuses == [401]


def test_503_with_retry_after_is_unavailable_with_the_hint(standin: RouterStandIn) -> None:
    standin.fail_next(503, retry_after="7")
    router = http_router(standin.url)
    error = refused_or_unavailable(router)
    assert isinstance(error, RouterUnavailable) and error.retry_after == 7
    router.send(delivery())  # the next request is taken
    router.close()
    assert len(standin.requests) == 1


def test_retry_after_may_be_an_http_date() -> None:
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: now
    assert (retry_after_seconds("Fri, 01 Jan 2100 00:00:00 GMT") or 0) > 3000
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    assert retry_after_seconds("0") == 0.0


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_answers_are_unavailable(standin: RouterStandIn, status: int) -> None:
    standin.fail_next(status)
    router = http_router(standin.url)
    error = refused_or_unavailable(router)
    router.close()
    assert isinstance(error, RouterUnavailable) and error.retry_after is None
    assert standin.requests == []


def test_429_passes_its_retry_after_date_on(standin: RouterStandIn) -> None:
    standin.fail_next(429, retry_after="Fri, 01 Jan 2100 00:00:00 GMT")
    router = http_router(standin.url)
    error = refused_or_unavailable(router)
    router.close()
    assert isinstance(error, RouterUnavailable) and (error.retry_after or 0) > 3000


def test_400_is_refused_with_the_start_of_the_body(standin: RouterStandIn) -> None:
    problem = b'{"title": "unknown workflow", "detail": "' + b"x" * 2000 + b'"}'
    standin.fail_next(400, body=problem)
    router = http_router(standin.url)
    error = refused_or_unavailable(router)
    router.close()
    assert isinstance(error, RouterRefused) and error.status == 400
    assert '{"title": "unknown workflow", "detail": "xxx' in error.reason
    assert "x" * 600 not in error.reason  # an excerpt, not the whole body
    assert standin.requests == []


@pytest.mark.parametrize("status", [403, 404, 409, 413, 422])
def test_other_4xx_are_refused(standin: RouterStandIn, status: int) -> None:
    standin.fail_next(status)
    router = http_router(standin.url)
    error = refused_or_unavailable(router)
    router.close()
    assert isinstance(error, RouterRefused) and error.status == status


def test_an_echoed_secret_is_kept_out_of_the_error(standin: RouterStandIn) -> None:
    standin.fail_next(400, body=f"bad request: header X-Router-Secret: {SECRET}".encode())
    router = http_router(standin.url)
    error = refused_or_unavailable(router)  # checks the secret is absent
    router.close()
    assert "X-Router-Secret: ***" in error.reason


def test_a_redirect_is_refused_not_followed(standin: RouterStandIn) -> None:
    standin.fail_next(302)
    router = http_router(standin.url)
    error = refused_or_unavailable(router)
    router.close()
    # Followed, the POST would become a GET the stand-in answers 501: unavailable, not refused.
    assert isinstance(error, RouterRefused) and error.status == 302
    assert standin.statuses == [302] and "/moved" in error.reason


def test_failures_until_recovered_then_taken(standin: RouterStandIn) -> None:
    standin.fail_always(500)
    router = http_router(standin.url)
    for _ in range(3):
        assert isinstance(refused_or_unavailable(router), RouterUnavailable)
    standin.recover()
    router.send(delivery())
    router.close()
    assert standin.statuses == [500, 500, 500, 202] and len(standin.requests) == 1


def test_no_server_is_unavailable() -> None:
    router = http_router(f"http://127.0.0.1:{closed_port()}/replays")
    error = refused_or_unavailable(router)
    router.close()
    assert isinstance(error, RouterUnavailable) and error.retry_after is None


def test_a_secret_that_cannot_be_a_header_is_refused_without_quoting_it(standin: RouterStandIn) -> None:
    bad = "line-one\r\nX-Injected: yes"
    router = http_router(standin.url, secret=bad)
    with pytest.raises(RouterRefused) as caught:
        router.send(delivery())
    router.close()
    assert "line-one" not in str(caught.value) and caught.value.__suppress_context__
    assert standin.requests == []


def test_the_standin_refuses_a_missing_secret_and_counts_no_failure(standin: RouterStandIn) -> None:
    import requests

    standin.fail_next(503)
    answer = requests.post(standin.url, data=b"{}", timeout=5)
    assert answer.status_code == 401
    router = http_router(standin.url)
    assert isinstance(refused_or_unavailable(router), RouterUnavailable)  # the queued 503 is still there
    router.send(delivery())
    router.close()
    assert standin.statuses == [401, 503, 202] and json.loads(standin.requests[0].body) == json.loads(JSON_BODY)
