"""`eventstore walk`: send the Marain expense-claim walk to a running host over HTTP, then show what the
query API answers (history, state, audit search, faulted instances); then send `deal.won` messages to the
sample engine the host runs, and show a failed run's trace (`send_deal_walk`). `eventstore walk --spike` drives the
sample engine into a failure spike and out of it, and shows the page, the Slack posts and the resolve that the
host's local alert receivers got (`send_spike_walk`)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from azure.core.exceptions import AzureError

from eventstore.alerts.failure_rate import dedup_key
from eventstore.client import EventStoreClient, Trace
from eventstore.errors import EventStoreError
from eventstore.event_types import EventType
from eventstore.store import AUDIT_STREAM_ID
from eventstore_local.alert_commands import (
    DEFAULT_PAGERDUTY,
    DEFAULT_SLACK,
    pagerduty_line,
    received_page,
    slack_line,
)
from eventstore_local.engine import DEAL_WORKFLOW_ID, ENGINE_QUEUE, Deal, deal_won_envelope, send_to_engine
from eventstore_local.engine.messages import encode_body, engine_queue
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


# -- the failure spike (`eventstore walk --spike`) ------------------------------------------------------------

SPIKE_MESSAGES, SPIKE_EVERY = 20, 10
"""The spike: 20 deal.won messages, every 10th failing: 2 of 20 (10 %) is over the failure-rate rule's default
threshold (5 %) at its default minimum volume (20 executions)."""
ALERT_RATE = 0.05
"""The rule's default threshold, until the trigger says which one the host applies (its `custom_details`)."""
ALERT_TIMEOUT = 180.0
"""How long to wait for a page or a resolve: three periods of the alert timer's default schedule (a minute)."""
_SPIKE_ERROR = {"error": {"code": "ServiceUnavailable", "message": "503 the mail relay is overloaded"}}


@dataclass(frozen=True)
class SpikeResult:
    """What the local receivers got for the spike's incident."""

    tenant_id: str
    dedup_key: str
    trigger: dict[str, Any]
    resolve: dict[str, Any]
    slack_posts: list[dict[str, Any]]


@dataclass
class _Receiver:
    """A local alert receiver (`eventstore host` starts them): what arrived after `after`."""

    url: str
    member: str
    line: Callable[[dict[str, Any]], str]
    after: int = -1

    def start(self, what: str) -> None:
        page = received_page(self.url, 2**62)
        if page is None:
            raise WalkFailed(
                f"no local {what} receiver answers at {self.url}: `eventstore host` starts one unless that channel "
                "is configured (--alerts-port; EVENTSTORE_ALERTS_ENABLED)"
            )
        self.after = page["next"] - 1

    def arrived(self) -> list[dict[str, Any]]:
        """Everything received since `start`."""
        page = received_page(self.url, self.after)
        return list(page[self.member]) if page else []


def _say_now(line: str) -> None:
    print(line, flush=True)  # the spike waits minutes: its progress must show as it goes, piped or not


def send_spike_walk(
    api_url: str,
    *,
    storage: str | None = None,
    email_url: str = DEFAULT_EMAIL_URL,
    pagerduty_url: str = DEFAULT_PAGERDUTY,
    slack_url: str = DEFAULT_SLACK,
    say: Callable[[str], None] = _say_now,
    tenant_id: str | None = None,
    queue: str = ENGINE_QUEUE,
    timeout: float = 60.0,
    alert_timeout: float = ALERT_TIMEOUT,
    progress_every: float = 10.0,
) -> SpikeResult:
    """Drives the sample engine of a running host into a failure spike and out of it: deal.won messages of which
    a share fail at the email step (the email destination is told to answer 503 for them), enough to cross the
    failure-rate rule; then waits for the page and the Slack posts at the host's local receivers, heals the
    destination, sends successes until the rate is back at the threshold, and waits for the resolve. A tenant of
    its own (a new one by default), so that a second spike within the window starts from nothing."""
    connection = storage or default_storage()
    tenant_id = tenant_id or f"{LITWARE_TENANT_ID[:32]}{uuid4().hex}"
    key = dedup_key(tenant_id, DEAL_WORKFLOW_ID)
    pagerduty = _Receiver(pagerduty_url, "events", pagerduty_line)
    slack = _Receiver(slack_url, "posts", slack_line)
    pagerduty.start("PagerDuty")
    slack.start("Slack")
    tag = uuid4().hex[:8]
    failing = f"fail-{tag}"
    with EventStoreClient(api_url) as client:
        client.onboard_tenant(tenant_id)
        say(f"\nA failure spike of workflow {DEAL_WORKFLOW_ID}, tenant {tenant_id}")
        say(f"  the email service answers 503 for every {SPIKE_EVERY}th deal")
        _control(email_url, {"failMatching": failing, "status": 503, "body": _SPIKE_ERROR})
        try:
            deals = [
                Deal(
                    deal_id=f"{tag}-{n}",
                    customer=f"Customer {n}",
                    email=f"buyer{n}@{failing if n % SPIKE_EVERY == 0 else 'contoso'}.example",
                    amount=1_000 * n,
                )
                for n in range(1, SPIKE_MESSAGES + 1)
            ]
            ended = _run_deals(client, connection, queue, tenant_id, deals, timeout, say)
        finally:
            _control(email_url, {"failMatching": None})
        failed = ended.count("failed")
        say(
            f"  {len(ended)} executions ended, {failed} failed ({failed / len(ended):.0%}; the rule pages over "
            f"{ALERT_RATE:.0%} with at least {SPIKE_MESSAGES} executions in the last hour)"
        )

        say("\nWaiting for the alert timer (every minute by default, EVENTSTORE_ALERTS_SCHEDULE) to page")
        trigger = _wait_for_page(pagerduty, key, "trigger", alert_timeout, progress_every, say)
        _say_page(trigger, say)
        posts = _wait_for_posts(slack, tenant_id, 1, alert_timeout, say)

        say("\nThe email service is healed")
        details = trigger["event"].get("payload", {}).get("custom_details", {})
        rate = float(details.get("threshold", ALERT_RATE))
        total = len(ended)
        while failed / total > rate:  # the rule's own comparison: resolved once no longer over the threshold
            total += 1
        healthy = [
            Deal(deal_id=f"{tag}-{n}", customer=f"Customer {n}", email=f"buyer{n}@contoso.example", amount=1_000 * n)
            for n in range(len(ended) + 1, total + 1)
        ]
        ended += _run_deals(client, connection, queue, tenant_id, healthy, timeout, say)
        failed = ended.count("failed")
        say(f"  {len(ended)} executions ended, {failed} failed ({failed / len(ended):.0%}, not over {rate:.0%})")

        say("\nWaiting for the alert timer to resolve")
        resolve = _wait_for_page(pagerduty, key, "resolve", alert_timeout, progress_every, say)
        say(f"  {pagerduty_line(resolve)}")
        posts = _wait_for_posts(slack, tenant_id, len(posts) + 1, alert_timeout, say, shown=len(posts))
    say(f"\nOne incident, {key}: paged, {len(posts)} Slack post(s), resolved")
    return SpikeResult(tenant_id, key, trigger["event"], resolve["event"], [p["post"] for p in posts])


def _run_deals(
    client: EventStoreClient,
    storage: str,
    queue: str,
    tenant_id: str,
    deals: list[Deal],
    timeout: float,
    say: Callable[[str], None],
) -> list[str]:
    """Sends `deals` to the engine at once, then waits for each one's execution to end; their statuses."""
    envelopes = [deal_won_envelope(tenant_id, deal) for deal in deals]
    try:
        with engine_queue(storage, queue) as sender:
            for envelope in envelopes:
                sender.send_message(encode_body(json.dumps(envelope, indent=2).encode()))
    except AzureError as exc:
        raise WalkFailed(f"could not send deal.won to queue {queue}: {str(exc).splitlines()[0]}") from exc
    say(f"  {len(envelopes)} deal.won sent to the engine")
    statuses: list[str] = []
    for envelope in envelopes:
        try:
            executions = client.wait_for_executions(tenant_id, envelope["operationId"], timeout=timeout)
        except TimeoutError as exc:
            raise WalkFailed(
                f"{exc}: is the sample engine running (`eventstore host`, without --no-engine)? The host's log "
                "says why it could not run a message"
            ) from exc
        statuses.append(executions[-1].status)
    return statuses


def _wait_for_page(
    receiver: _Receiver, key: str, action: str, timeout: float, every: float, say: Callable[[str], None]
) -> dict[str, Any]:
    """The first PagerDuty event `action` for `key` the receiver got, printing how long it has been meanwhile."""
    started = time.monotonic()
    told = started
    while True:
        for item in receiver.arrived():
            event = item["event"]
            if event.get("dedup_key") == key and event.get("event_action") == action:
                say(f"  the {action} arrived after {time.monotonic() - started:.0f} s of waiting")
                return dict(item)
        now = time.monotonic()
        if now - started >= timeout:
            raise WalkFailed(
                f"no PagerDuty {action} for {key} within {timeout:.0f} s: GET /api/tenants/{{tenant}}/alerts shows "
                "the incident and its notices; the host's log says what the alert timer did"
            )
        if now - told >= every:
            told = now
            say(f"  ... {now - started:.0f} s")
        time.sleep(0.5)


def _wait_for_posts(
    receiver: _Receiver, tenant_id: str, count: int, timeout: float, say: Callable[[str], None], *, shown: int = 0
) -> list[dict[str, Any]]:
    """The Slack posts about `tenant_id` once there are `count` of them (sent right after the page); each one after
    the first `shown` printed with its buttons."""
    deadline = time.monotonic() + timeout
    while True:
        posts = [p for p in receiver.arrived() if tenant_id in json.dumps(p.get("post"))]
        for post in posts[shown:]:
            say(f"  {slack_line(post)}")
            for block in post["post"].get("blocks", []):
                for button in block.get("elements", []) if block.get("type") == "actions" else []:
                    say(f"    [{button['text']['text']}] {button.get('url')}")
        shown = len(posts)
        if shown >= count:
            return posts
        if time.monotonic() >= deadline:
            raise WalkFailed(f"{shown} of {count} Slack post(s) about tenant {tenant_id} within {timeout:.0f} s")
        time.sleep(0.5)


def _say_page(item: dict[str, Any], say: Callable[[str], None]) -> None:
    event = item["event"]
    payload = event.get("payload", {})
    details = payload.get("custom_details", {})
    say(f"  {pagerduty_line(item)}")
    say(f"    severity {payload.get('severity')}, source {payload.get('source')}")
    say(
        f"    {details.get('failed')} of {details.get('executions')} failed between {details.get('from')} and "
        f"{details.get('to')}"
    )
    for link in event.get("links", []):
        say(f"    {link.get('text')}: {link.get('href')}")
