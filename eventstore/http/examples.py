"""Example values the OpenAPI document shows, shared by the operations of several function modules."""

from __future__ import annotations

from typing import Any

from eventstore.ingest import CLOUDEVENT_CONTENT_TYPE

EXAMPLE_TENANT = "75b9261673c2714681f14c97bc0439fb45a820d625de884bb5a127d6b1104f82"
EXAMPLE_INSTANCE = "eddee27b-52e7-4c33-a82e-891fc4b359e4"
EXAMPLE_CONTINUATION = "<an audit continuation of the example tenant>"
"""Replaced, when the document is served, by a token signed with the deployment's key (an example is
only worth showing if the API would take it)."""

EXAMPLE_EVENT_ITEM: dict[str, Any] = {
    "eventId": "183154e3-4db4-4e5a-946d-ddc147e5ad44",
    "eventType": "TransitionCompleted",
    "streamId": f"instance:{EXAMPLE_INSTANCE}",
    "sequenceNumber": 2,
    "globalPosition": 17,
    "workflowId": "simple-expenses-workflow",
    "workflowInstanceId": EXAMPLE_INSTANCE,
    "sourceSystem": "azuresubscriptionid.workflowresourcegroupname",
    "contentType": CLOUDEVENT_CONTENT_TYPE,
    "payloadSha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "payloadSize": 1234,
    "recordedAt": "2024-05-01T09:31:47.091254+00:00",
    "payload": {"specversion": "1.0", "type": "io.marain.workflow.instance.transition-completed"},
}
EXAMPLE_STATE: dict[str, Any] = {
    "workflowInstanceId": EXAMPLE_INSTANCE,
    "workflowId": "simple-expenses-workflow",
    "stateId": "waiting-for-approval",
    "status": "waiting",
    "context": {"Claimant": "J George", "CostCenter": "GD3724"},
    "lastSequence": 2,
    "lastEventType": "TransitionCompleted",
    "paused": False,
}
