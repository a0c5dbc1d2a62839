"""The benchmark payload: the Marain trigger envelope, with fresh ids in it for every event."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import uuid4

_SAMPLE_PATHS = (Path(__file__).resolve().parents[1] / "eventstore_local" / "samples" / "envelope-trigger.json",)

# Used when the sample file is not on this machine: the same envelope, as the sample has it.
_FALLBACK = {
    "contentType": "application/vnd.marain.workflows.hosted.messageenvelope",
    "tenantId": "75b9261673c2714681f14c97bc0439fb45a820d625de884bb5a127d6b1104f82",
    "isStartWorkflowRequest": False,
    "isTrigger": True,
    "trigger": {
        "contentType": "application/vnd.marain.workflows.hosted.trigger",
        "id": "d56528bd-8af1-4044-a241-15479afca111",
        "triggerName": "Submit",
        "parameters": {"SubmittedBy": "J George"},
        "subjects": ["eddee27b-52e7-4c33-a82e-891fc4b359e4"],
    },
    "operationId": "7e7033bf-3e51-4df6-94d0-a51fc0f9afc3",
    "properties": {
        "GetWorkflowInstancesPageNumber": 0,
        "WorkflowInstanceId": "eddee27b-52e7-4c33-a82e-891fc4b359e4",
    },
}
_TRIGGER_ID = "d56528bd-8af1-4044-a241-15479afca111"
_OPERATION_ID = "7e7033bf-3e51-4df6-94d0-a51fc0f9afc3"


def _template() -> tuple[bytes, bytes, bytes]:
    for path in _SAMPLE_PATHS:
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            break
    else:
        text = json.dumps(_FALLBACK, indent=2) + "\n"
    head, rest = text.split(_TRIGGER_ID, 1)
    middle, tail = rest.split(_OPERATION_ID, 1)
    return head.encode(), middle.encode(), tail.encode()


_HEAD, _MIDDLE, _TAIL = _template()


def envelope() -> bytes:
    """One trigger envelope (~600 bytes of JSON) with a fresh trigger id and operation id."""
    return b"".join((_HEAD, str(uuid4()).encode(), _MIDDLE, str(uuid4()).encode(), _TAIL))


PAYLOAD_SIZE = len(envelope())
