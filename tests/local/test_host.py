"""The local Functions host, end to end: a real Azurite, real HTTP over 127.0.0.1, the app in
tests/local/host_app. No PostgreSQL is needed."""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient, TextBase64EncodePolicy

from eventstore_local.host import ConfigError, DevHost, HostConfig
from eventstore_local.host.routing import RouteError, RouteTemplate
from eventstore_local.host.timers import Schedule
from eventstore_local.standins.azurite import Azurite, AzuriteError, find_azurite, port_open
from tests.helpers import PROJECT_ROOT
from tests.local.host_app import app as host_app

ROOT = PROJECT_ROOT
HOST_JSON = Path(__file__).parent / "host_app" / "host.json"
ENVIRON = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "DEVHOST_QUEUE": "work",
    "DEVHOST_CHAIN_QUEUE": "chain",
}
PLAIN_ENVIRON = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "DEVHOST_QUEUE": "plain-work",
    "DEVHOST_CHAIN_QUEUE": "plain-chain",
    "AzureWebJobs.tick.Disabled": "true",
}
PLAIN_HOST_JSON = {
    "version": "2.0",
    "extensions": {
        "http": {"routePrefix": ""},
        "queues": {"messageEncoding": "none", "maxPollingInterval": "00:00:00.200", "maxDequeueCount": 2},
    },
}


# -- fixtures: one Azurite and two hosts for the module ---------------------------------------------------


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    with Azurite(in_memory=True) as storage:
        yield storage


@pytest.fixture(scope="module")
def functions() -> list[func.Function]:
    return host_app.app.get_functions()  # once per app object; both hosts serve this list


@pytest.fixture(scope="module")
def host(azurite: Azurite, functions: list[func.Function]) -> Iterator[DevHost]:
    with DevHost(
        functions, port=0, environ=ENVIRON, host_json=HOST_JSON, development_storage=azurite.connection_string
    ) as running:
        yield running


@pytest.fixture(scope="module")
def plain_host(azurite: Azurite, functions: list[func.Function]) -> Iterator[DevHost]:
    """messageEncoding none, no route prefix, the timer disabled by its app setting."""
    with DevHost(
        functions,
        port=0,
        environ=PLAIN_ENVIRON,
        host_json=PLAIN_HOST_JSON,
        development_storage=azurite.connection_string,
    ) as running:
        yield running


def call(
    base_url: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Message, bytes]:
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def queue(azurite: Azurite, name: str, **policies: Any) -> QueueClient:
    return QueueClient.from_connection_string(azurite.connection_string, name, **policies)


def count(client: QueueClient) -> int:
    """Messages in the queue, visible or not (0 while it does not exist)."""
    try:
        return client.get_queue_properties().approximate_message_count or 0
    except ResourceNotFoundError:
        return 0


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def received_for(message_id: str) -> list[tuple[bytes, int | None]]:
    return [(body, count) for mid, body, count in list(host_app.received) if mid == message_id]


def assert_problem(status: int, headers: Message, body: bytes, expected: int) -> dict[str, Any]:
    assert status == expected
    assert headers["Content-Type"] == "application/problem+json"
    document: dict[str, Any] = json.loads(body)
    assert document["type"].startswith("urn:eventstore:problem:")
    assert document["status"] == expected
    assert document["title"]
    return document


# -- HTTP ----------------------------------------------------------------------------------------------------


def test_route_parameters_query_headers_and_body_reach_the_function(host: DevHost) -> None:
    status, headers, body = call(
        host.base_url, "POST", "/api/items/books/42?a=1&a=2&b=", body=b'{"x": 1}', headers={"X-Test": "yes"}
    )
    assert status == 201
    assert headers["Content-Type"] == "application/json"
    assert headers.get_all("X-Multi") == ["one", "two"]
    echoed = json.loads(body)
    assert echoed == {
        "method": "POST",
        "url": f"{host.base_url}/api/items/books/42?a=1&a=2&b=",
        "route": {"category": "books", "id": "42"},
        "params": {"a": "1,2", "b": ""},
        "header": "yes",
        "body": '{"x": 1}',
    }


def test_routing_precedence_constraints_and_catch_all(host: DevHost) -> None:
    status, headers, body = call(host.base_url, "GET", "/api/items/books/special")  # literal beats {id:int}
    assert (status, body) == (200, b"special books")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"  # a str return value
    assert call(host.base_url, "GET", "/API/Items/Books/7")[0] == 200  # literals match case-insensitively
    assert call(host.base_url, "GET", "/api/items/books/seven")[0] == 404  # {id:int}
    assert call(host.base_url, "GET", "/api/items/b00ks/7")[0] == 404  # {category:alpha}
    assert call(host.base_url, "GET", "/api/files/a/b%2Fc%20d.txt")[2] == b"a/b/c d.txt"
    status, headers, body = call(host.base_url, "GET", "/api/readonly")
    assert (status, headers["Content-Type"], body) == (200, "application/octet-stream", b"\x00\x01binary")


def test_unknown_route_is_404_problem_json(host: DevHost) -> None:
    document = assert_problem(*call(host.base_url, "GET", "/api/nothing/here"), expected=404)
    assert "/api/nothing/here" in document["detail"]
    assert_problem(*call(host.base_url, "GET", "/elsewhere"), expected=404)  # outside the route prefix


def test_wrong_method_is_405_problem_json_with_allow(host: DevHost) -> None:
    status, headers, body = call(host.base_url, "DELETE", "/api/readonly")
    assert_problem(status, headers, body, expected=405)
    assert headers["Allow"] == "GET"
    status, headers, body = call(host.base_url, "PUT", "/api/items/books/1", body=b"x")
    assert_problem(status, headers, body, expected=405)
    assert headers["Allow"] == "GET, POST"


def test_a_failing_function_is_500_problem_json_and_logged(host: DevHost, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="eventstore_local.host")
    assert_problem(*call(host.base_url, "GET", "/api/boom"), expected=500)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "boom" in r.getMessage()]
    assert errors
    assert errors[0].exc_info is not None
    assert "this function always fails" in str(errors[0].exc_info[1])
    # one line per request, written once the response is out
    wait_for(lambda: any(r.getMessage().startswith("GET /api/boom 500 ") for r in caplog.records), what="the line")


def test_keep_alive_serves_several_requests_on_one_connection(host: DevHost) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", int(host.base_url.rsplit(":", 1)[1]), timeout=10)
    try:
        sockets = []
        for n in range(3):
            connection.request("POST", f"/api/items/books/{n}", body=b"x")
            response = connection.getresponse()
            assert response.status == 201
            assert json.loads(response.read())["route"]["id"] == str(n)
            sockets.append(connection.sock)
        assert sockets[0] is not None and all(s is sockets[0] for s in sockets)
    finally:
        connection.close()


def test_a_chunked_request_body_is_read_whole(host: DevHost) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", int(host.base_url.rsplit(":", 1)[1]), timeout=10)
    try:
        chunks = iter([b"first,", b"second,", b"third"])
        connection.request("POST", "/api/items/books/1", body=chunks, encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 201
        assert json.loads(response.read())["body"] == "first,second,third"
    finally:
        connection.close()


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/api/slow?delay=0.4", "/api/blocking"])
def test_concurrent_requests_run_in_parallel(host: DevHost, path: str) -> None:
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: call(host.base_url, "GET", path), range(20)))
    elapsed = time.monotonic() - started
    assert [status for status, _, _ in results] == [200] * 20
    assert elapsed < 2.5, f"20 requests of ~0.3-0.4 s took {elapsed:.2f} s: not concurrent"


# -- queues -------------------------------------------------------------------------------------------------


def test_a_queue_message_is_processed_and_deleted(host: DevHost, azurite: Azurite) -> None:
    work = queue(azurite, "work", message_encode_policy=TextBase64EncodePolicy())
    body = f"hello {uuid.uuid4()}"
    sent = work.send_message(body)
    wait_for(lambda: received_for(sent.id) == [(body.encode(), 1)], what="the message to be processed")
    wait_for(lambda: count(work) == 0, what="the message to be deleted")


def test_base64_binary_bodies_arrive_byte_exact(host: DevHost, azurite: Azurite) -> None:
    work = queue(azurite, "work", message_encode_policy=BinaryBase64EncodePolicy())
    body = bytes(range(256))
    sent = work.send_message(body)
    wait_for(lambda: received_for(sent.id) == [(body, 1)], what="the binary message")


@pytest.mark.slow
def test_a_failing_message_is_retried_then_moved_to_the_poison_queue(host: DevHost, azurite: Azurite) -> None:
    work = queue(azurite, "work", message_encode_policy=TextBase64EncodePolicy())
    sent = work.send_message("fail")
    poison = queue(azurite, "work-poison", message_decode_policy=BinaryBase64DecodePolicy())
    wait_for(lambda: count(poison) >= 1, what="the poison queue")
    assert received_for(sent.id) == [(b"fail", 1), (b"fail", 2), (b"fail", 3)]  # host.json maxDequeueCount 3
    poisoned = list(poison.receive_messages())
    assert [m.content for m in poisoned] == [b"fail"]  # the original body, base64 as it came
    wait_for(lambda: count(work) == 0, what="the original to go")


@pytest.mark.slow
def test_a_message_not_in_base64_fails_and_is_poisoned_as_it_came(host: DevHost, azurite: Azurite) -> None:
    """Sender and host.json must agree on the encoding: plain text into a base64 host never reaches the function."""
    chain = queue(azurite, "chain")
    chain.send_message("plain text, not base64!")
    poison = queue(azurite, "chain-poison")
    wait_for(lambda: count(poison) >= 1, what="the poison queue")
    assert [m.content for m in poison.receive_messages()] == ["plain text, not base64!"]
    assert "plain text, not base64!" not in host_app.chained


def test_an_output_binding_feeds_a_queue_trigger(host: DevHost) -> None:
    body = f"via output {uuid.uuid4()}"
    assert call(host.base_url, "POST", "/api/enqueue", body=body.encode())[0] == 202
    wait_for(lambda: any(b == body.encode() for _, b, _ in list(host_app.received)), what="the queued message")


def test_an_async_queue_function_bound_as_str(host: DevHost, azurite: Azurite) -> None:
    text = f"héllo {uuid.uuid4()}"
    queue(azurite, "chain", message_encode_policy=TextBase64EncodePolicy()).send_message(text)
    wait_for(lambda: text in host_app.chained, what="the chained message")


def test_encoding_none_and_an_empty_route_prefix(plain_host: DevHost, azurite: Azurite) -> None:
    """A second host on the same function list: host.json from a mapping, `%Name%` queue names from its
    app settings, a function disabled by `AzureWebJobs.<name>.Disabled`."""
    assert plain_host.api_url == plain_host.base_url
    assert call(plain_host.base_url, "GET", "/items/books/1")[0] == 200
    assert call(plain_host.base_url, "GET", "/api/items/books/1")[0] == 404
    body = f"plain {uuid.uuid4()}"
    sent = queue(azurite, "plain-work").send_message(body)  # no encode policy: the text as is
    wait_for(lambda: received_for(sent.id) == [(body.encode(), 1)], what="the plain message")
    assert plain_host.skipped == {"tick": "disabled by AzureWebJobs.tick.Disabled"}


@pytest.mark.slow
def test_the_command_serves_in_the_foreground_until_interrupted(azurite: Azurite, tmp_path: Path) -> None:
    """`python -m eventstore_local.host`: app settings from a local.settings.json, Ctrl-C stops it cleanly."""
    settings = tmp_path / "local.settings.json"
    values = {**PLAIN_ENVIRON, "DEVHOST_QUEUE": "cli-work", "AzureWebJobsStorage": azurite.connection_string}
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    env = {k: v for k, v in os.environ.items() if k not in values}
    command = [
        sys.executable,
        "-m",
        "eventstore_local.host",
        "--app",
        "tests.local.host_app.app:app",
        "--port",
        "0",
        "--project-root",
        str(ROOT),
        "--host-json",
        str(HOST_JSON),
        "--settings",
        str(settings),
        "--no-azurite",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Listening on "):
                break
        output = "".join(lines)
        assert "HTTP auth levels are not enforced" in output, output
        assert "tick: not served: disabled by AzureWebJobs.tick.Disabled" in output
        base_url = lines[-1].split()[2]
        assert call(base_url, "GET", "/api/items/books/5")[0] == 200
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=20)
        assert process.returncode == 0, output + rest
        assert "GET /api/items/books/5 200" in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- timers -------------------------------------------------------------------------------------------------


def test_the_every_second_timer_fires(host: DevHost) -> None:
    before = len(host_app.ticks)
    wait_for(lambda: len(host_app.ticks) > before, timeout=3, what="a timer tick")
    assert host_app.ticks[-1] is False  # not past due


def test_ncrontab_schedules_are_seconds_first() -> None:
    moment = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    daily = Schedule("0 17 3 * * *")  # the partition timer's schedule
    assert daily.next_after(moment) == datetime(2026, 3, 2, 3, 17, 0, tzinfo=UTC)
    assert Schedule("*/15 * * * * *").next_after(moment) == datetime(2026, 3, 1, 12, 0, 15, tzinfo=UTC)
    assert Schedule("0 30 9 * * 1-5").next_after(moment) == datetime(2026, 3, 2, 9, 30, 0, tzinfo=UTC)  # Monday
    assert Schedule("00:05:00").next_after(moment) == datetime(2026, 3, 1, 12, 5, 0, tzinfo=UTC)
    with pytest.raises(ConfigError):
        Schedule("every minute")


# -- pieces -------------------------------------------------------------------------------------------------


def test_route_templates() -> None:
    guid = str(uuid.uuid4())
    assert RouteTemplate("items/{id:guid}").match(f"items/{guid}") == {"id": guid}
    assert RouteTemplate("items/{id:guid}").match("items/42") is None
    assert RouteTemplate("items/{name?}").match("items") == {}
    assert RouteTemplate("items/{name?}").match("items/x") == {"name": "x"}
    assert RouteTemplate("items/{page:int=1}").match("items") == {"page": "1"}
    assert RouteTemplate("files/{name}.{ext}").match("files/a.tar.gz") == {"name": "a.tar", "ext": "gz"}
    assert RouteTemplate("n/{n:range(1,10)}").match("n/11") is None
    assert RouteTemplate(r"c/{code:regex(^[a-z]{{2}}\d$)}").match("c/ab1") == {"code": "ab1"}
    assert RouteTemplate("a/b").match("a/b/c") is None
    literal, parameter = RouteTemplate("items/special"), RouteTemplate("items/{x}")
    assert literal.precedence < RouteTemplate("items/{x:int}").precedence < parameter.precedence
    for bad in ("items/{x:nosuch}", "{*rest}/more", "a/{x}/{x}", "a/{x"):
        with pytest.raises(RouteError):
            RouteTemplate(bad)


def test_host_json_settings() -> None:
    config = HostConfig.load(HOST_JSON)
    assert config.route_prefix == "api"
    assert config.queues.max_dequeue_count == 3
    assert config.queues.max_polling_interval == pytest.approx(0.2)
    assert config.queues.threshold == 2
    assert config.function_timeout == 60
    project = HostConfig.load(ROOT / "host.json")  # the app's own host.json is readable here
    assert project.queues.message_encoding == "base64"  # what the project's senders use (DESIGN.md, Functions)
    v1 = HostConfig.load({"extensions": {"queues": {"maxPollingInterval": 500}}})
    assert v1.queues.max_polling_interval == pytest.approx(0.5)  # plain numbers: milliseconds, as host.json v1
    with pytest.raises(ConfigError):
        HostConfig.load({"extensions": {"queues": {"messageEncoding": "utf-16"}}})


# -- Azurite ------------------------------------------------------------------------------------------------


def test_a_missing_azurite_says_to_run_bootstrap(tmp_path: Path) -> None:
    with pytest.raises(AzuriteError, match="run scripts/bootstrap"):
        find_azurite(tmp_path)


AZURITE_CHILD = """
import sys, time
from eventstore_local.standins.azurite import Azurite
from tests.helpers import PROJECT_ROOT
storage = Azurite(in_memory=True).start()
print(storage._proc.pid, storage.queue_port, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in {"Z", "X"}


@pytest.mark.slow
def test_azurite_goes_when_stopped_and_when_its_parent_is_killed() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", AZURITE_CHILD], cwd=ROOT, stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        with Azurite(in_memory=True) as own:
            assert own._proc is not None
            own_pid, own_port = own._proc.pid, own.queue_port
            assert port_open(own_port)
        assert _gone(own_pid)
        assert not port_open(own_port)

        assert child.stdout is not None
        node_pid, child_port = (int(v) for v in child.stdout.readline().split())
        assert port_open(child_port)
        child.send_signal(signal.SIGKILL)  # no clean-up code runs in the parent
        child.wait(timeout=10)
        wait_for(lambda: _gone(node_pid) and not port_open(child_port), timeout=10, what="the orphaned Azurite to exit")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
