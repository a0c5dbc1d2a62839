"""`eventstore demo`: onboard Litware, record a Marain expense-claim walk, print history and state."""

from __future__ import annotations

import json
from collections.abc import Callable

from eventstore import query
from eventstore.store import AUDIT_STREAM_ID, EventStore
from eventstore_local.samples import CLAIM_INSTANCE_ID, LITWARE_TENANT_ID, expense_claim_walk


def run_demo(store: EventStore, say: Callable[[str], None] = print, tenant_id: str = LITWARE_TENANT_ID) -> None:
    placement = store.onboard_tenant(tenant_id)
    say(f"tenant {placement.tenant_id}\n  schema {placement.schema_name}, container {placement.container_name}")
    tenant = store.tenant(tenant_id)
    walk = expense_claim_walk()
    repeats = 0
    for index, step in enumerate(walk, 1):
        result = tenant.append(step.stream_id, [step.event])
        repeats += result.repeated
        say(
            f"  [{index:2}/{len(walk)}] {step.stream_id:<48} #{result.version:<3} {step.event.event_type}"
            + ("  (already recorded)" if result.repeated else "")
        )
    if repeats:
        say(f"{repeats} of {len(walk)} events were already recorded: appends are idempotent on event id")

    say(f"\nAudit stream ({AUDIT_STREAM_ID}): messages received")
    for event in tenant.read_stream(AUDIT_STREAM_ID):
        body = event.json()
        what = body.get("trigger", {}).get("triggerName") or body.get("startWorkflowInstanceRequest", {}).get(
            "workflowId"
        )
        say(f"  #{event.sequence_number:<3} {event.recorded_at:%Y-%m-%d %H:%M:%S} {event.event_type:<32} {what}")

    say(f"\nHistory of instance {CLAIM_INSTANCE_ID}")
    for event in query.replay(tenant, CLAIM_INSTANCE_ID):
        data = event.json().get("data", {})
        say(
            f"  #{event.sequence_number:<3} {event.event_type:<20} {data.get('previousState', ''):>24} -> "
            f"{data.get('newState', '')} ({data.get('newStatus', '')})  sha256 {event.payload_sha256.hex()[:12]}"
        )

    version = tenant.stream_version(f"instance:{CLAIM_INSTANCE_ID}")
    say("\nState rebuilt at each sequence number")
    for at in range(1, version + 1):
        state = query.rebuild_state(tenant, CLAIM_INSTANCE_ID, at_sequence=at)
        say(f"  @{at:<3} {state.state_id:<24} {state.status:<9} {json.dumps(state.context)}")
    page = tenant.read_all(limit=1000)
    say(f"\nAll-stream: {len(page.events)} events, next checkpoint {page.next_checkpoint}")
