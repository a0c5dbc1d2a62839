from __future__ import annotations

import json

from eventstore import TenantEvents
from eventstore.feed.cloudevents import FeedEventData, cloudevent_type, to_cloudevent
from eventstore_local.samples import CLAIM_INSTANCE_ID

REQUIRED = {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}


def test_feed_events_carry_ids_and_positions_never_payloads(walked: TenantEvents) -> None:
    tenant_id = walked.tenant_id
    events = walked.read_all().events
    cloudevents = [to_cloudevent(tenant_id, e) for e in events]
    for cloudevent, recorded in zip(cloudevents, events, strict=True):
        assert set(cloudevent) == REQUIRED and cloudevent["specversion"] == "1.0"
        assert cloudevent["id"] == str(recorded.event_id)
        assert cloudevent["source"] == f"/tenants/{tenant_id}"
        assert cloudevent["time"].endswith("Z")
        assert cloudevent["data"]["sequenceNumber"] == recorded.sequence_number
        assert cloudevent["data"]["globalPosition"] == recorded.global_position
        # The documented model of `data` and the dict built on the hot path say exactly the same.
        assert FeedEventData.model_validate(cloudevent["data"]).model_dump(mode="json") == cloudevent["data"]
        assert set(cloudevent["data"]) == {
            "tenantId",
            "workflowId",
            "workflowInstanceId",
            "eventId",
            "eventType",
            "streamId",
            "sequenceNumber",
            "globalPosition",
        }
    text = json.dumps(cloudevents)
    # Nothing of the context, trigger parameters or payloads reaches the feed.
    for secret in ("J George", "GD3724", "Rail fare", "SubmittedBy", "Claimant", "newContext"):
        assert secret not in text
    created = next(c for c in cloudevents if c["type"].endswith(".instance-created"))
    assert created["subject"] == f"workflowInstances/{CLAIM_INSTANCE_ID}"
    assert created["data"]["workflowId"] == "simple-expenses-workflow"
    assert created["data"]["workflowInstanceId"] == CLAIM_INSTANCE_ID
    assert {c["subject"] for c in cloudevents if c["data"]["streamId"] == "audit"} == {"audit"}


def test_types_are_kebab_case_under_a_configurable_prefix() -> None:
    assert cloudevent_type("TransitionCompleted") == "io.eventstore.workflow.transition-completed"
    assert cloudevent_type("InstanceCreationRequestReceived", "com.example") == (
        "com.example.instance-creation-request-received"
    )
    assert cloudevent_type("Error") == "io.eventstore.workflow.error"
