"""`eventstore replay ...` against the suite's local host over real HTTP: a single replay is followed until its
job finishes; a bulk dry run counts; a bulk job past the confirmation limit is refused until --confirm, then
followed to its end; jobs are listed, shown, paused, resumed and cancelled; the app's refusals are one line
on stderr with exit 1. Also `eventstore host`'s default replay router, and the key header."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, get_args
from uuid import uuid4

import pytest
import requests
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from eventstore.http.replay_models import MessageEventType, MessageStatus
from eventstore_local.cli import main
from eventstore_local.host.cli import replay_router_defaults
from eventstore_local.replay_commands import EVENT_TYPES, STATUSES, default_requester
from tests.helpers import REPLAY_ROUTER_QUEUE, random_tenant_id
from tests.http.client import envelope

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture(scope="module")
def router_queue(azurite: Any) -> Iterator[None]:
    """The suite's host sends replays to this queue; the router never creates it."""
    client = QueueClient.from_connection_string(azurite.connection_string, REPLAY_ROUTER_QUEUE)
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    yield
    client.close()


@pytest.fixture
def tenant_id(api_url: str, router_queue: None) -> str:
    tenant = random_tenant_id()
    assert requests.put(f"{api_url}/tenants/{tenant}", timeout=30).status_code == 201
    return tenant


def record(api_url: str, tenant_id: str) -> str:
    answer = requests.post(
        f"{api_url}/tenants/{tenant_id}/messages",
        data=envelope(tenant_id),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["eventId"])


def job(api_url: str, tenant_id: str, job_id: str) -> dict[str, Any]:
    answer = requests.get(f"{api_url}/tenants/{tenant_id}/replays/{job_id}", timeout=30)
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def replay(capsys: pytest.CaptureFixture[str], api_url: str, *args: str) -> tuple[int, str, str]:
    """`eventstore replay <args> --url <the suite's host>` in this process: exit code, stdout, stderr."""
    capsys.readouterr()
    code = main(["replay", *args, "--url", api_url])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("eventstore: error: "), err
    return lines[0]


def test_a_single_replay_is_followed_until_its_job_finishes(
    capsys: pytest.CaptureFixture[str], api_url: str, tenant_id: str
) -> None:
    event_id = record(api_url, tenant_id)

    code, out, _ = replay(capsys, api_url, "message", tenant_id, event_id, "--reason", "CRM fixed", "--dry-run")
    assert code == 0
    assert "dry run: 1 message(s) match" in out and f"queue:{REPLAY_ROUTER_QUEUE}" in out
    assert event_id in out and "no steps known" in out
    assert requests.get(f"{api_url}/tenants/{tenant_id}/replays", timeout=30).json()["jobs"] == []

    code, out, err = replay(capsys, api_url, "message", tenant_id, event_id, "--reason", "CRM fixed")
    assert code == 0, err
    found = re.search(rf"replay ({UUID}) of message {event_id}: job ({UUID})", out)
    assert found, out
    replay_id, job_id = found.groups()
    assert f"job {job_id} finished: 1 of 1 sent" in out
    finished = job(api_url, tenant_id, job_id)
    assert (finished["state"], finished["sent"], finished["kind"]) == ("finished", 1, "single")
    assert (finished["reason"], finished["requestedBy"]) == ("CRM fixed", default_requester())
    assert replay_id != job_id


def test_the_apps_refusals_are_one_error_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], api_url: str, tenant_id: str
) -> None:
    unknown = str(uuid4())
    code, _, err = replay(capsys, api_url, "message", tenant_id, unknown, "--reason", "why")
    assert code == 1
    assert one_error_line(err) == f"eventstore: error: event {unknown} is not stored for this tenant"

    code, _, err = replay(capsys, api_url, "status", tenant_id, str(uuid4()))
    assert code == 1 and "eventstore: error: " in one_error_line(err)
    code, _, err = replay(capsys, api_url, "status", random_tenant_id())
    assert code == 1 and "is not onboarded" in one_error_line(err)


def test_a_bulk_replay_past_the_limit_needs_confirm_then_runs_to_the_end(
    capsys: pytest.CaptureFixture[str], api_url: str, tenant_id: str
) -> None:
    events = [record(api_url, tenant_id) for _ in range(3)]
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    bulk = ["bulk", tenant_id, "--reason", "template fixed", "--type", "TriggerReceived", "--from", since]

    code, out, err = replay(capsys, api_url, *bulk, "--dry-run")
    assert code == 0, err
    assert "dry run: 3 message(s) match" in out and all(e in out for e in events)
    code, out, _ = replay(capsys, api_url, *bulk, "--type", "InstanceCreationRequestReceived", "--dry-run")
    assert code == 0 and "dry run: 0 message(s) match" in out  # the options reach the filter

    # The suite's host lets a job replay at most 2 messages without confirming (EVENTSTORE_REPLAY_CONFIRM_OVER).
    code, _, err = replay(capsys, api_url, *bulk)
    assert code == 1
    line = one_error_line(err)
    assert "matches 3 messages" in line and "add --confirm" in line
    assert requests.get(f"{api_url}/tenants/{tenant_id}/replays", timeout=30).json()["jobs"] == []

    code, out, err = replay(capsys, api_url, *bulk, "--confirm")
    assert code == 0, err
    found = re.search(rf"job ({UUID}): 3 message\(s\) to queue:{REPLAY_ROUTER_QUEUE}", out)
    assert found, out
    job_id = found.group(1)
    assert f"job {job_id} finished: 3 of 3 sent" in out
    finished = job(api_url, tenant_id, job_id)
    assert (finished["state"], finished["sent"], finished["matched"]) == ("finished", 3, 3)
    assert finished["filter"]["eventType"] == "TriggerReceived" and "from" in finished["filter"]


def test_jobs_are_listed_shown_paused_resumed_and_cancelled(
    capsys: pytest.CaptureFixture[str], api_url: str, tenant_id: str
) -> None:
    for _ in range(3):
        record(api_url, tenant_id)
    # A canary of one: the first message is sent, and no engine reports its run in the suite, so the job waits
    # for that run, running, for as long as the test needs it (a resumed job skips its canary: it runs on).
    canary = ["--confirm", "--canary", "1", "--max-failure-rate", "0.5", "--no-follow"]

    def start(reason: str) -> str:
        code, out, err = replay(capsys, api_url, "bulk", tenant_id, "--reason", reason, *canary)
        assert code == 0, err
        found = re.search(rf"job ({UUID}): 3 message\(s\)", out)
        assert found, out
        return found.group(1)

    job_id = start("canary")
    code, _, err = replay(capsys, api_url, "bulk", tenant_id, "--reason", "again", "--confirm")
    assert code == 1
    line = one_error_line(err)
    assert f"job {job_id}" in line and f"eventstore replay status {tenant_id} {job_id}" in line

    code, out, err = replay(capsys, api_url, "pause", tenant_id, job_id, "--reason", "lunch")
    assert (code, err) == (0, "")
    assert f"job {job_id} paused" in out and f"eventstore replay resume {tenant_id} {job_id}" in out
    code, out, _ = replay(capsys, api_url, "status", tenant_id)
    assert code == 0
    [listed] = [line for line in out.splitlines() if line.startswith(job_id)]
    assert listed.split()[1:3] == ["bulk", "paused"] and "canary" in listed
    code, out, _ = replay(capsys, api_url, "status", tenant_id, job_id)
    assert code == 0
    assert f"job {job_id} (bulk): paused" in out and "canary: first 1, max failure rate 50%" in out
    assert "paused: lunch" in out

    code, out, _ = replay(capsys, api_url, "cancel", tenant_id, job_id, "--reason", "wrong filter")
    assert code == 0 and f"job {job_id} cancelled" in out and "not sent (cancelled)" in out
    cancelled = job(api_url, tenant_id, job_id)
    assert cancelled["state"] == "cancelled" and cancelled["counts"]["cancelled"] + cancelled["sent"] == 3
    code, _, err = replay(capsys, api_url, "resume", tenant_id, job_id)
    assert code == 1 and "cancelled" in one_error_line(err)

    again = start("canary again")  # the cancelled job holds its messages no more
    assert replay(capsys, api_url, "pause", tenant_id, again)[0] == 0
    code, out, _ = replay(capsys, api_url, "resume", tenant_id, again)
    assert code == 0 and re.search(f"job {again} (running|finished)", out), out
    code, out, _ = replay(capsys, api_url, "status", tenant_id)
    assert [line.split()[0] for line in out.splitlines()[1:]] == [again, job_id]  # newest first


class _Recorder(BaseHTTPRequestHandler):
    """An app that wants a key: 401 without one (as Azure answers, no problem+json), an empty page with it."""

    keys: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        key = self.headers.get("x-functions-key")
        self.keys.append(key)
        body = json.dumps({"jobs": [], "continuation": None}).encode() if key else b""
        self.send_response(200 if key else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_key_goes_in_the_functions_key_header(capsys: pytest.CaptureFixture[str]) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api"
    tenant = random_tenant_id()
    try:
        code, out, _ = replay(capsys, url, "status", tenant, "--key", "admin-key")
        assert code == 0 and f"tenant {tenant} has no replay jobs" in out
        code, _, err = replay(capsys, url, "status", tenant)
        assert code == 1 and "answered 401" in one_error_line(err) and "--key" in err
        assert _Recorder.keys == ["admin-key", None]
    finally:
        server.shutdown()
        server.server_close()
    code, _, err = replay(capsys, url, "status", tenant)  # nobody listens any more
    assert code == 1 and "is the app running?" in one_error_line(err)


def test_the_host_sends_replays_to_the_sample_engine_only_when_it_runs_it_and_nothing_is_configured() -> None:
    storage = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    engine_queue = {
        "EVENTSTORE_REPLAY_ROUTER__QUEUE": "engine-messages",
        "EVENTSTORE_REPLAY_ROUTER__CONNECTION": "UseDevelopmentStorage=true",  # the storage the engine reads
    }
    assert replay_router_defaults(storage, engine=True, queue="engine-messages") == engine_queue
    empty = {**storage, "EVENTSTORE_REPLAY_ROUTER__QUEUE": ""}  # empty is "not set", as in local.settings.json
    assert replay_router_defaults(empty, engine=True, queue="engine-messages") == engine_queue
    assert replay_router_defaults(storage, engine=False, queue="engine-messages") == {}
    for configured in (
        {"EVENTSTORE_REPLAY_ROUTER__QUEUE": "mine"},
        {"EVENTSTORE_REPLAY_ROUTER__URL": "https://router.example/replays", "EVENTSTORE_REPLAY_ROUTER__SECRET": "s"},
        {"eventstore_replay_router__queue": "mine"},
        {"EVENTSTORE_REPLAY_ROUTER": '{"queue": "mine"}'},
    ):
        assert replay_router_defaults({**storage, **configured}, engine=True, queue="q") == {}, configured
    # A tenant's own router leaves the deployment-wide default to the host.
    tenant_only = {**storage, "EVENTSTORE_REPLAY_ROUTERS__abc__QUEUE": "theirs"}
    assert replay_router_defaults(tenant_only, engine=True, queue="engine-messages") == engine_queue


def test_the_commands_choices_are_the_wires() -> None:
    assert get_args(MessageEventType) == EVENT_TYPES
    assert get_args(MessageStatus) == STATUSES
