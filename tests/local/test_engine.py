"""The sample engine against real Azurite and the local host: deal.won messages from its queue, the two
local destinations, and the traces the read routes answer."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from eventstore.client import EventStoreClient
from eventstore_local.engine import CREATE_CRM_RECORD, SEND_EMAIL, Deal, LocalEngine, deal_won_envelope, send_to_engine
from eventstore_local.walk import send_deal_walk
from tests.helpers import CONTINUATION_KEY, PROJECT_ROOT, random_tenant_id


@pytest.fixture
def engine(api_url: str, azurite: Any) -> Iterator[LocalEngine]:
    queue = f"engine-{uuid4().hex[:12]}"  # a queue of its own: no other test's engine takes its messages
    with LocalEngine(api_url, azurite.connection_string, crm_port=0, email_port=0, queue=queue, backoff=0.01) as local:
        yield local


@pytest.fixture
def client(api_url: str) -> Iterator[EventStoreClient]:
    with EventStoreClient(api_url) as store:
        yield store


@pytest.fixture
def tenant(client: EventStoreClient) -> str:
    tenant_id = random_tenant_id()
    client.onboard_tenant(tenant_id)
    return tenant_id


def _deal(n: int) -> Deal:
    return Deal(deal_id=f"{uuid4().hex[:8]}-{n}", customer="Contoso", email="buyer@contoso.example", amount=1200.5)


def _send(engine: LocalEngine, azurite: Any, envelope: dict[str, Any]) -> None:
    send_to_engine(azurite.connection_string, envelope, queue=engine.queue)


def test_a_won_deal_creates_the_record_sends_the_email_and_its_trace_reads_back(
    engine: LocalEngine, azurite: Any, client: EventStoreClient, tenant: str
) -> None:
    deal = _deal(1)
    envelope = deal_won_envelope(tenant, deal)
    _send(engine, azurite, envelope)
    assert engine.engine is not None
    (result,) = engine.engine.wait_for(1, timeout=20)
    assert result.succeeded and result.execution_id is not None
    assert result.message_event_id == envelope["operationId"]

    trace = client.wait_for_execution(tenant, result.execution_id)
    assert (trace.status, trace.workflow_instance_id, trace.message_event_id) == (
        "succeeded",
        deal.instance_id,
        envelope["operationId"],
    )
    steps = {s.name: s for s in trace.steps}
    crm, mail = steps[CREATE_CRM_RECORD], steps[SEND_EMAIL]
    assert (crm.name, crm.status, crm.attempts, crm.idempotency_key) == (
        CREATE_CRM_RECORD,
        "succeeded",
        1,
        f"{deal.instance_id}/crm",
    )
    assert isinstance(crm.output, dict) and crm.output["recordId"] == "crm-1"
    assert (mail.name, mail.status, mail.input) == (
        SEND_EMAIL,
        "succeeded",
        {"to": deal.email, "subject": "Welcome aboard, Contoso", "crmRecordId": "crm-1"},
    )
    assert [r.body["customer"] for r in engine.crm.requests] == ["Contoso"]
    # The message was recorded first, byte-exact, and its processing settled.
    stored = client.transport.request("GET", f"tenants/{tenant}/events/{envelope['operationId']}")
    assert json.loads(stored.content) == envelope
    assert client.message(tenant, envelope["operationId"]).status == "succeeded"


def test_a_destination_failing_beyond_the_attempts_fails_the_run_with_its_answer_in_the_trace(
    engine: LocalEngine, azurite: Any, client: EventStoreClient, tenant: str
) -> None:
    down = {"error": {"code": "MailboxUnavailable", "message": "550 mailbox unavailable"}}
    engine.email.fail_next(5, status=500, body=down)
    deal = _deal(2)
    envelope = deal_won_envelope(tenant, deal)
    _send(engine, azurite, envelope)
    assert engine.engine is not None
    (result,) = engine.engine.wait_for(1, timeout=20)
    assert not result.succeeded and result.execution_id is not None

    trace = client.wait_for_execution(tenant, result.execution_id)
    assert trace.status == "failed"
    step = trace.failed_step()
    assert step is not None and (step.name, step.attempts) == (SEND_EMAIL, 3)
    assert step.input == {"to": deal.email, "subject": "Welcome aboard, Contoso", "crmRecordId": "crm-1"}
    assert step.error is not None and step.error.status_code == 500
    assert step.error.body is not None and json.loads(step.error.body) == down
    assert [s.status for s in trace.steps if s.name == CREATE_CRM_RECORD] == ["succeeded"]
    assert len(engine.email.requests) == 3
    assert client.message(tenant, envelope["operationId"]).status == "failed"

    # The same message again, the email service back: the CRM step is not run twice (its idempotency key).
    _send(engine, azurite, envelope)
    second = engine.engine.wait_for(2, timeout=20)[1]
    assert second.succeeded and second.execution_id is not None
    again = client.wait_for_execution(tenant, second.execution_id)
    assert [(s.name, s.status) for s in again.steps] == [(SEND_EMAIL, "succeeded")]
    assert len(engine.crm.requests) == 1
    executions = client.executions_of_message(tenant, envelope["operationId"])
    assert sorted(e.status for e in executions) == ["failed", "succeeded"]
    message = client.message(tenant, envelope["operationId"])
    assert (message.status, message.attempts, message.latest_execution_id) == ("succeeded", 2, second.execution_id)


def test_eventstore_host_runs_the_sample_engine_and_the_walk_shows_its_failed_run(
    database_url: str, azurite: Any, tmp_path: Path
) -> None:
    port, queue = _free_port(), f"host-{uuid4().hex[:12]}"
    env = {
        **os.environ,
        "EVENTSTORE_DATABASE_URL": database_url,
        "AzureWebJobsStorage": azurite.connection_string,
        "EVENTSTORE_CONTINUATION_KEY": CONTINUATION_KEY,
    }
    command = [sys.executable, "-m", "eventstore_local", "host", "--port", str(port), "--no-azurite"]
    command += ["--settings", str(tmp_path / "absent.json"), "--crm-port", "0", "--email-port", "0"]
    command += ["--engine-queue", queue, "--eventgrid-port", "-1"]
    log_path = tmp_path / "host.log"
    with log_path.open("w") as log:
        host = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"email (http://127\.0\.0\.1:\d+)", log_path.read_text())):
            assert host.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        lines: list[str] = []
        api = f"http://127.0.0.1:{port}/api"
        trace = send_deal_walk(
            api, storage=azurite.connection_string, email_url=found.group(1), say=lines.append, queue=queue,
            tenant_id=random_tenant_id(),
        )  # fmt: skip
        assert trace.status == "failed" and "failed at step send-email after 3 attempt(s)" in "\n".join(lines)
    finally:
        host.terminate()
        assert host.wait(30) == 0
    assert "stopping" in log_path.read_text()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
