"""`eventstore walk`: send the Marain expense-claim walk to a running host over HTTP, then show what the
query API answers (history, state, audit search, faulted instances). Standard library only, so it runs
from any checkout."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from eventstore.errors import EventStoreError
from eventstore.store import AUDIT_STREAM_ID
from eventstore_local.samples import CLAIM_INSTANCE_ID, LITWARE_TENANT_ID, expense_claim_walk


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
    audit = _call("GET", f"{tenant}/audit?eventType=TriggerReceived&limit=100")
    say(f"GET .../audit?eventType=TriggerReceived: {len(audit['events'])} triggers received")
    faulted = _call("GET", f"{tenant}/instances?status=faulted")
    say(f"GET .../instances?status=faulted: {', '.join(i['workflowInstanceId'] for i in faulted['instances'])}")
