"""`eventstore walk`: send the Marain expense-claim walk to a running host over HTTP, then show what the
query API answers (history, state, audit search, faulted instances); then send `deal.won` messages to the
sample engine the host runs, and show a failed run's trace (`send_deal_walk`)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from uuid import uuid4

from azure.core.exceptions import AzureError

from eventstore.client import EventStoreClient, Trace
from eventstore.errors import EventStoreError
from eventstore.event_types import EventType
from eventstore.store import AUDIT_STREAM_ID
from eventstore_local.engine import ENGINE_QUEUE, Deal, deal_won_envelope, send_to_engine
from eventstore_local.samples import CLAIM_INSTANCE_ID, LITWARE_TENANT_ID, expense_claim_walk
from eventstore_local.settings import AppSettings
from eventstore_local.standins.azurite import connection_string as azurite_connection_string
from eventstore_local.standins.azurite import is_development_storage
from eventstore_local.standins.destinations import DEFAULT_EMAIL_PORT


class WalkFailed(EventStoreError):
    """The host answered a request of the walk with an error."""


def _call(method: str, url: str, body: bytes | None = None, content_type: str = "application/json") -> Any:
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310 (http URL given by the user)
    if body is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            text = response.read()
    except urllib.error.HTTPError as exc:
        raise WalkFailed(f"{method} {url} answered {exc.code}: {exc.read().decode(errors='replace')}") from exc
    except urllib.error.URLError as exc:
        raise WalkFailed(f"{method} {url} failed: {exc.reason} (is `eventstore host` running?)") from exc
    return json.loads(text) if text else None


def send_walk(api_url: str, say: Callable[[str], None] = print, tenant_id: str = LITWARE_TENANT_ID) -> None:
    api = api_url.rstrip("/")
    tenant = f"{api}/tenants/{tenant_id}"
    placement = _call("PUT", tenant, b"{}")
    say(f"tenant {tenant_id} onboarded (schema {placement['schema']})")
    for step in expense_claim_walk():
        event = step.event
        if step.stream_id == AUDIT_STREAM_ID:
            answer = _call("POST", f"{tenant}/messages", event.payload)
            where = "audit"
        else:
            instance = step.stream_id.split(":", 1)[1]
            if event.content_type == "application/cloudevents+json":
                body, content_type = event.payload, event.content_type
            else:  # a native outcome: the payload travels as a JSON value inside the item
                body = (
                    b'{"eventId": "'
                    + str(event.event_id).encode()
                    + b'", "eventType": "'
                    + event.event_type.value.encode()
                    + b'", "payload": '
                    + event.payload
                    + b"}"
                )
                content_type = "application/json"
            answer = _call("POST", f"{tenant}/instances/{instance}/events", body, content_type)
            where = f"instance {instance[:8]}"
        repeated = " (already recorded)" if answer.get("repeated") else ""
        say(f"  {event.event_type:<32} -> {where}{repeated}")

    history = _call("GET", f"{tenant}/instances/{CLAIM_INSTANCE_ID}/events")
    say(f"\nGET .../instances/{CLAIM_INSTANCE_ID}/events: {len(history['events'])} events")
    for item in history["events"]:
        say(f"  #{item['sequenceNumber']:<3} {item['eventType']}")
    state = _call("GET", f"{tenant}/instances/{CLAIM_INSTANCE_ID}/state")
    say(f"GET .../state: {state.get('stateId')} ({state.get('status')}), context {json.dumps(state.get('context'))}")
    sent = sum(1 for step in expense_claim_walk() if step.event.event_type == EventType.TRIGGER_RECEIVED)
    # The audit is read in commit-safe order: an event is listed once every transaction older than it has
    # ended, so one that commits a moment after another session's write shows a moment later.
    deadline = time.monotonic() + 5.0
    while True:
        audit = _call("GET", f"{tenant}/audit?eventType=TriggerReceived&limit=100")
        if len(audit["events"]) >= sent or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    say(f"GET .../audit?eventType=TriggerReceived: {len(audit['events'])} triggers received")
    faulted = _call("GET", f"{tenant}/instances?status=faulted")
    say(f"GET .../instances?status=faulted: {', '.join(i['workflowInstanceId'] for i in faulted['instances'])}")


DEFAULT_EMAIL_URL = f"http://127.0.0.1:{DEFAULT_EMAIL_PORT}"
_EMAIL_DOWN = {"error": {"code": "MailboxUnavailable", "message": "550 5.1.1 mailbox unavailable"}}


def default_storage() -> str:
    """The engine queue's storage: `AzureWebJobsStorage` when it names an account, else Azurite's standard ports
    (where `eventstore host` starts it)."""
    configured = AppSettings.current().get("AzureWebJobsStorage", "")
    return configured if configured and not is_development_storage(configured) else azurite_connection_string()


def send_deal_walk(
    api_url: str,
    *,
    storage: str | None = None,
    email_url: str = DEFAULT_EMAIL_URL,
    say: Callable[[str], None] = print,
    tenant_id: str = LITWARE_TENANT_ID,
    timeout: float = 30.0,
    queue: str = ENGINE_QUEUE,
) -> Trace:
    """Two `deal.won` messages through the sample engine that `eventstore host` runs: one that succeeds, and one
    while the email destination is told to fail beyond the engine's attempts; prints both traces as the read
    routes answer them, the failed one in full. Returns the failed run's trace."""
    connection = storage or default_storage()
    with EventStoreClient(api_url) as client:
        client.onboard_tenant(tenant_id)
        say("\nThe sample engine: deal.won runs create-crm-record, then send-email")
        tag = uuid4().hex[:6]
        good = Deal(deal_id=f"{tag}-1", customer="Contoso", email="buyer@contoso.example", amount=12_000)
        trace = _run_deal(client, connection, queue, tenant_id, good, timeout)
        say(f"  deal {good.deal_id}: execution {trace.execution_id} {trace.status}")
        _say_steps(trace, say)

        _control(email_url, {"failNext": 10, "status": 500, "body": _EMAIL_DOWN})
        try:
            bad = Deal(deal_id=f"{tag}-2", customer="Fabrikam", email="buyer@fabrikam.example", amount=8_500)
            failed = _run_deal(client, connection, queue, tenant_id, bad, timeout)
        finally:
            _control(email_url, {"failNext": 0})
        say(f"  deal {bad.deal_id}, the email service answering 500: execution {failed.execution_id} {failed.status}")
        _say_steps(failed, say)

        step = failed.failed_step()
        say(f"\nGET .../executions/{failed.execution_id}:")
        if step is None:
            say(f"  {failed.status}, no step failed")
            return failed
        error = step.error
        say(f"  failed at step {step.name} after {step.attempts} attempt(s)")
        for attempt in step.attempt_history:
            answered = attempt.error.status_code if attempt.error else None
            say(f"    attempt {attempt.attempt}: {attempt.status}" + (f" ({answered})" if answered else ""))
        say(f"  its input: {json.dumps(step.input)}")
        if error is not None:
            say(f"  the destination answered {error.status_code}: {error.body}")
        if failed.message_event_id is not None:
            message = client.message(tenant_id, failed.message_event_id)
            say(f"GET .../messages/{message.event_id}: {message.status}, {message.attempts} execution(s)")
        return failed


def _run_deal(client: EventStoreClient, storage: str, queue: str, tenant_id: str, deal: Deal, timeout: float) -> Trace:
    envelope = deal_won_envelope(tenant_id, deal)
    operation_id = envelope["operationId"]
    try:
        send_to_engine(storage, envelope, queue)
    except AzureError as exc:
        raise WalkFailed(f"could not send deal.won to queue {queue}: {str(exc).splitlines()[0]}") from exc
    try:
        executions = client.wait_for_executions(tenant_id, operation_id, timeout=timeout)
        return client.wait_for_execution(tenant_id, executions[-1].execution_id, timeout=timeout)
    except TimeoutError as exc:
        raise WalkFailed(
            f"{exc}: is the sample engine running (`eventstore host`, without --no-engine)? The host's log "
            "says why it could not run a message"
        ) from exc


def _say_steps(trace: Trace, say: Callable[[str], None]) -> None:
    for step in trace.steps:
        say(f"    {step.name or step.step_id:<20} {step.status:<10} {step.attempts} attempt(s)")


def _control(email_url: str, body: dict[str, Any]) -> None:
    try:
        _call("POST", f"{email_url.rstrip('/')}/control", json.dumps(body).encode())
    except WalkFailed as exc:
        raise WalkFailed(f"the email destination does not answer ({exc})") from exc
