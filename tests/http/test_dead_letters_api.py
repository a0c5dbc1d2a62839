"""The ingest queues' dead letters over real HTTP, end to end through the suite's local Functions host: a
message for a tenant never onboarded fails on `workflow-messages` until the host moves it to its poison
queue; the alert timer's drain keeps it; the routes list it and show its exact body and why; once the tenant
is onboarded a redrive sends it back and the host records it. Bad ids and filters are 400s naming the
parameter, an unknown id a 404."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from typing import Any
from uuid import uuid4

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from eventstore import EventStore
from eventstore.alerts.poison_queues import PoisonQueues, drain
from eventstore.store import AUDIT_STREAM_ID
from tests.helpers import random_tenant_id
from tests.http.client import Api, assert_problem, envelope
from tests.http.test_openapi import DOCUMENT, errors


def _fits(answer: Any, path: str, method: str = "get") -> Any:
    assert answer.status == 200, answer.body
    schema = DOCUMENT["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
    body = answer.json()
    assert not errors(body, schema), errors(body, schema)
    return body


def _poisoned(azurite: Any, body: bytes, seconds: float = 60.0) -> None:
    """Send `body` to workflow-messages and wait until the host has given up on it (its poison queue)."""
    text = base64.b64encode(body).decode()
    with QueueClient.from_connection_string(azurite.connection_string, "workflow-messages") as queue:
        queue.send_message(text)
    with QueueClient.from_connection_string(azurite.connection_string, "workflow-messages-poison") as poison:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(ResourceNotFoundError):  # made by the host with the first message it poisons
                if any(m.content == text for m in poison.peek_messages(max_messages=32)):
                    return
            time.sleep(0.3)
    raise AssertionError("the message never reached workflow-messages-poison")


def test_a_poisoned_message_is_listed_shown_and_redriven_once_its_tenant_exists(
    api: Api, store: EventStore, azurite: Any
) -> None:
    tenant_id = random_tenant_id()
    body = envelope(tenant_id)
    _poisoned(azurite, body)
    queues = PoisonQueues(azurite.connection_string, 10.0)
    drained = drain(store, store.settings, queues, notify=False)
    assert drained.kept >= 1 and not drained.errors

    page = _fits(api.get("dead-letters", tenantId=tenant_id), "/dead-letters")
    [letter] = page["deadLetters"]
    assert page["nextAfter"] is None
    assert (letter["queue"], letter["tenantId"], letter["messageType"]) == (
        "workflow-messages-poison",
        tenant_id,
        "Submit",
    )
    assert letter["reason"] == f"UnknownTenant: tenant {tenant_id} was never onboarded"
    assert (letter["body"], letter["bodyEncoding"], letter["wasBase64"]) == (body.decode(), "utf-8", True)
    assert letter["redrivenAt"] is None and letter["redrives"] == 0
    one = _fits(api.get(f"dead-letters/{letter['id']}"), "/dead-letters/{deadLetterId}")
    assert one == letter
    assert _fits(api.get("dead-letters", tenantId=tenant_id, waiting="true"), "/dead-letters")["deadLetters"] == [
        letter
    ]

    assert api.request("PUT", f"tenants/{tenant_id}").status == 201
    asked = json.dumps({"requestedBy": "ops@contoso.example", "reason": "tenant onboarded"}).encode()
    route = "/dead-letters/{deadLetterId}/redrive"
    redriven = _fits(api.post(f"dead-letters/{letter['id']}/redrive", asked), route, "post")
    assert (redriven["redrivenBy"], redriven["redriveReason"], redriven["redrives"]) == (
        "ops@contoso.example", "tenant onboarded", 1,
    )  # fmt: skip
    assert _fits(api.get("dead-letters", tenantId=tenant_id, waiting="true"), "/dead-letters")["deadLetters"] == []

    tenant = store.tenant(tenant_id)
    deadline = time.monotonic() + 60  # the host's queue trigger records it
    while not tenant.read_stream(AUDIT_STREAM_ID) and time.monotonic() < deadline:
        time.sleep(0.3)
    [recorded] = tenant.read_stream(AUDIT_STREAM_ID)
    assert str(recorded.event_id) == json.loads(body)["operationId"] and recorded.payload == body

    # Behind App Service Authentication the signed-in principal is who asks, whatever the body says.
    again = api.post(
        f"dead-letters/{letter['id']}/redrive", b"{}", **{"X-MS-CLIENT-PRINCIPAL-NAME": "alice@contoso.example"}
    )
    assert _fits(again, route, "post")["redrivenBy"] == "alice@contoso.example"


def test_bad_dead_letter_requests_are_refused_naming_the_parameter(api: Api) -> None:
    assert_problem(api.get("dead-letters/9000000000001"), 404, deadLetterId=9000000000001)
    for bad in ("abc", "0", "-1", "1.5", "99999999999999999999999", "%D9%A3"):  # the last: an Arabic-Indic 3
        assert_problem(api.get(f"dead-letters/{bad}"), 400, field="deadLetterId")
    assert_problem(api.get("dead-letters", limit="0"), 400, field="limit")
    assert_problem(api.get("dead-letters", after="-1"), 400, field="after")
    assert_problem(api.get("dead-letters", tenantId="not a tenant"), 400, field="tenantId")
    assert_problem(api.get("dead-letters", waiting="perhaps"), 400, field="waiting")
    assert_problem(api.get("dead-letters", colour="red"), 400, field="colour")
    assert_problem(api.post("dead-letters/1/redrive", b"{}"), 400, field="requestedBy")
    assert_problem(api.post("dead-letters/1/redrive", b'{"requestedBy": "x"}', "text/plain"), 415)
    missing = json.dumps({"requestedBy": "ops@contoso.example"}).encode()
    assert_problem(api.post("dead-letters/9000000000001/redrive", missing), 404, deadLetterId=9000000000001)


def test_the_deployment_alerts_show_each_dead_letter_notice_and_its_delivery(
    api: Api, store: EventStore, azurite: Any
) -> None:
    queue = f"alerts{uuid4().hex[:10]}-poison"
    with QueueClient.from_connection_string(azurite.connection_string, queue) as poison:
        poison.create_queue()
        poison.send_message(base64.b64encode(envelope(random_tenant_id())).decode())
    queues = PoisonQueues(azurite.connection_string, 10.0, {queue: "workflow-messages"})
    assert drain(store, store.settings, queues, notify=True).kept == 1
    [letter] = store.queue_dead_letters().list(queue=queue)

    outbox = _fits(api.get("alerts"), "/alerts")["outbox"]
    [notice] = [n for n in outbox if n["key"] == f"queue-dead-letter/{queue}/{letter.message_id}"]
    assert (notice["channel"], notice["kind"], notice["state"], notice["attempts"]) == (
        "slack", "queue-dead-letter", "pending", 0,
    )  # fmt: skip
