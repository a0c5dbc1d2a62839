"""The sample engine against real Azurite and the local host: deal.won messages from its queue, the two
local destinations, and the traces the read routes answer; and replays of stored messages put on its queue,
which run only the steps that did not complete."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from eventstore.client import EventStoreClient
from eventstore.replay_wire import CompletedStep, ReplayDelivery, ReplayMarks, queue_text
from eventstore_local.engine import CREATE_CRM_RECORD, SEND_EMAIL, Deal, LocalEngine, deal_won_envelope, send_to_engine
from eventstore_local.engine.messages import engine_queue
from eventstore_local.host.process import HostProcess
from eventstore_local.standins.destinations import body_key
from eventstore_local.walk import send_deal_walk
from tests.helpers import CONTINUATION_KEY, random_tenant_id


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
        f"{envelope['operationId']}/{CREATE_CRM_RECORD}",  # the message's event id: the same in every execution
    )
    assert mail.idempotency_key == f"{envelope['operationId']}/{SEND_EMAIL}"
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

    # The same message again (redelivered, not a replay), the email service back: the CRM step is not run
    # twice (its idempotency key), and the trace says it was skipped.
    _send(engine, azurite, envelope)
    second = engine.engine.wait_for(2, timeout=20)[1]
    assert second.succeeded and second.execution_id is not None
    assert (second.replay_id, second.skipped_steps) == (None, (CREATE_CRM_RECORD,))
    again = client.wait_for_execution(tenant, second.execution_id)
    assert [(s.name, s.status) for s in again.steps] == [(CREATE_CRM_RECORD, "skipped"), (SEND_EMAIL, "succeeded")]
    assert again.replay_id is None
    assert len(engine.crm.requests) == 1
    executions = client.executions_of_message(tenant, envelope["operationId"])
    assert sorted(e.status for e in executions) == ["failed", "succeeded"]
    message = client.message(tenant, envelope["operationId"])
    assert (message.status, message.attempts, message.latest_execution_id) == ("succeeded", 2, second.execution_id)


def _replay(
    client: EventStoreClient, tenant: str, event_id: str, *, original: str | None = None, **marks: object
) -> ReplayDelivery:
    """A replay of the stored message `event_id` as the router delivers it: its exact bytes from GET
    /events/{eventId}, and marks naming `original` (by default the message itself)."""
    stored = client.transport.request("GET", f"tenants/{tenant}/events/{event_id}")
    assert stored.status_code == 200, stored.text
    return ReplayDelivery(
        marks=ReplayMarks(
            replay_id=uuid4(),
            original_event_id=UUID(original or event_id),
            idempotency_key=event_id,
            tenant_id=tenant,
            **marks,
        ),
        body=stored.content,
        content_type=stored.headers["Content-Type"],
    )


def _put_on_queue(engine: LocalEngine, azurite: Any, delivery: ReplayDelivery) -> None:
    with engine_queue(azurite.connection_string, engine.queue) as queue:
        queue.send_message(queue_text(delivery))


def test_a_replay_of_a_run_whose_email_failed_sends_only_the_email_and_creates_one_crm_record(
    engine: LocalEngine, azurite: Any, client: EventStoreClient, tenant: str
) -> None:
    """The seed's case: the CRM step succeeds, the email step fails for good; "fix" the email service and
    replay the message: only the email step runs, the CRM receives exactly one create."""
    assert engine.engine is not None
    engine.email.fail_next(3, status=503, body={"error": "mail service down"})  # beyond the 3 attempts
    deal = _deal(3)
    envelope = deal_won_envelope(tenant, deal)
    message_id = envelope["operationId"]
    _send(engine, azurite, envelope)
    (first,) = engine.engine.wait_for(1, timeout=20)
    assert not first.succeeded and first.execution_id is not None and first.skipped_steps == ()
    failed = client.wait_for_execution(tenant, first.execution_id)
    crm = next(s for s in failed.steps if s.name == CREATE_CRM_RECORD)
    failed_step = failed.failed_step()
    assert failed.status == "failed" and crm.status == "succeeded"
    assert failed_step is not None and (failed_step.name, failed_step.attempts) == (SEND_EMAIL, 3)
    assert failed_step.error is not None and failed_step.error.status_code == 503
    assert client.message(tenant, message_id).status == "failed"

    engine.email.fail_next(0)  # the fix
    delivery = _replay(
        client,
        tenant,
        message_id,
        replay_of=first.execution_id,
        completed_steps=(
            CompletedStep(
                name=CREATE_CRM_RECORD,
                idempotency_key=str(crm.idempotency_key),
                execution_id=crm.execution_id,
                step_id=crm.step_id,
            ),
        ),
    )
    assert json.loads(delivery.body) == envelope  # the bytes as they were received
    _put_on_queue(engine, azurite, delivery)
    second = engine.engine.wait_for(2, timeout=20)[1]
    replay_id = str(delivery.marks.replay_id)
    assert second.succeeded and second.execution_id is not None
    assert (second.replay_id, second.skipped_steps, second.message_event_id) == (
        replay_id,
        (CREATE_CRM_RECORD,),
        message_id,
    )

    replayed = client.wait_for_execution(tenant, second.execution_id)
    assert (replayed.status, replayed.replay_id, replayed.message_event_id) == ("succeeded", replay_id, message_id)
    assert replayed.replay_of == first.execution_id
    skip, mail = replayed.steps
    assert (skip.name, skip.status, skip.output) == (CREATE_CRM_RECORD, "skipped", crm.output)
    assert skip.skipped_for is not None
    assert (skip.skipped_for.execution_id, skip.skipped_for.step_id) == (first.execution_id, crm.step_id)
    assert (mail.name, mail.status, mail.attempts) == (SEND_EMAIL, "succeeded", 1)
    assert isinstance(crm.output, dict) and isinstance(mail.input, dict)
    assert mail.input["crmRecordId"] == crm.output["recordId"]  # the reused output fed the next step

    # The CRM received exactly one create; the email service accepted the email once (after 3 refusals).
    record = {"customer": deal.customer, "email": deal.email, "amount": deal.amount, "deal": deal.deal_id}
    assert engine.crm.received() == {body_key(record): 1} and len(engine.crm.requests) == 1
    assert engine.email.received() == {body_key(mail.input): 1} and engine.email.duplicates() == {}
    assert len(engine.email.requests) == 4
    message = client.message(tenant, message_id)
    assert (message.status, message.attempts, message.latest_execution_id) == ("succeeded", 2, second.execution_id)
    found = client.transport.get_json(f"tenants/{tenant}/executions", {"replayId": replay_id})
    assert [e["executionId"] for e in found["executions"]] == [second.execution_id]

    # The same replay delivered again (queues deliver at least once): nothing runs twice.
    _put_on_queue(engine, azurite, delivery)
    third = engine.engine.wait_for(3, timeout=20)[2]
    assert third.succeeded and third.skipped_steps == (CREATE_CRM_RECORD, SEND_EMAIL)
    assert engine.crm.duplicates() == {} and engine.email.duplicates() == {}
    assert len(engine.crm.requests) == 1 and len(engine.email.requests) == 4


def test_a_replay_whose_marks_name_another_message_is_run_as_its_bytes_say_and_the_mismatch_logged(
    engine: LocalEngine, azurite: Any, client: EventStoreClient, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="eventstore_local.engine")
    envelope = deal_won_envelope(tenant, _deal(4))
    _send(engine, azurite, envelope)
    assert engine.engine is not None
    (first,) = engine.engine.wait_for(1, timeout=20)
    assert first.succeeded
    wrong = str(uuid4())
    delivery = _replay(client, tenant, envelope["operationId"], original=wrong)
    _put_on_queue(engine, azurite, delivery)
    second = engine.engine.wait_for(2, timeout=20)[1]
    assert second.succeeded and second.message_event_id == envelope["operationId"]
    assert second.replay_id == str(delivery.marks.replay_id)
    assert second.skipped_steps == (CREATE_CRM_RECORD, SEND_EMAIL) and len(engine.crm.requests) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(wrong in w and envelope["operationId"] in w for w in warnings), warnings


def test_eventstore_host_runs_the_sample_engine_and_the_walk_shows_its_failed_run(
    database_url: str, azurite: Any, tmp_path: Path
) -> None:
    queue = f"host-{uuid4().hex[:12]}"
    env = {
        "EVENTSTORE_DATABASE_URL": database_url,
        "AzureWebJobsStorage": azurite.connection_string,
        "EVENTSTORE_CONTINUATION_KEY": CONTINUATION_KEY,
        # The suite's database and Azurite hold every other test's tenants and poison messages: the timers
        # that visit them all (the alerts' would post each poison message to Slack at Slack's pace) stay
        # out of this host, which must stop within its 30 s (the nudge after each append runs views and feed).
        "EVENTSTORE_FEED_SCHEDULE": "0 0 0 * * *",
        "EVENTSTORE_VIEWS_SCHEDULE": "0 0 0 * * *",
        "EVENTSTORE_ALERTS_SCHEDULE": "0 0 0 * * *",
        "EVENTSTORE_RETENTION_SCHEDULE": "0 0 0 1 1 *",
    }
    options = ["--crm-port", "0", "--email-port", "0", "--engine-queue", queue, "--eventgrid-port", "-1"]
    host = HostProcess(tmp_path, env, [*options, "--alerts-port", "0"], leave_out=()).start()
    try:
        deadline = time.monotonic() + 30  # the banner, however the host's output is buffered
        while not (found := re.search(r"email (http://127\.0\.0\.1:\d+)", host.log(last=100_000))):
            assert time.monotonic() < deadline, host.log()
            time.sleep(0.1)
        lines: list[str] = []
        trace = send_deal_walk(
            host.api, storage=azurite.connection_string, email_url=found.group(1), say=lines.append, queue=queue,
            tenant_id=random_tenant_id(),
        )  # fmt: skip
        assert trace.status == "failed" and "failed at step send-email after 3 attempt(s)" in "\n".join(lines)
    finally:
        assert host.stop() == 0
    log_path = host.log_path
    assert "stopping" in log_path.read_text()
