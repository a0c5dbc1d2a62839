"""Stream ids: the tenant's audit stream and one stream per workflow instance."""

from __future__ import annotations

import re

from eventstore.errors import InvalidInput

AUDIT_STREAM_ID = "audit"
INSTANCE_PREFIX = "instance:"
_STREAM_ID = re.compile(r"[^\x00-\x1f\x7f]{1,300}")


def instance_stream_id(workflow_instance_id: str) -> str:
    if not isinstance(workflow_instance_id, str) or not workflow_instance_id or len(workflow_instance_id) > 256:
        raise InvalidInput("workflow instance id must be 1-256 characters", field="workflowInstanceId")
    return INSTANCE_PREFIX + workflow_instance_id


def validate_stream_id(stream_id: object) -> str:
    if isinstance(stream_id, str) and _STREAM_ID.fullmatch(stream_id):
        return stream_id
    raise InvalidInput("stream id must be 1-300 characters without control characters", field="stream_id")
