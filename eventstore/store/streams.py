"""Stream ids: the tenant's audit stream, its maintenance stream and one stream per workflow instance."""

from __future__ import annotations

import re

from eventstore.errors import InvalidInput

AUDIT_STREAM_ID = "audit"
MAINTENANCE_STREAM_ID = "maintenance"
"""What the maintenance path did to the tenant's stored events (archiving, erasure), one event per action."""
INSTANCE_PREFIX = "instance:"
_STREAM_ID = re.compile(r"[^\x00-\x1f\x7f]{1,300}")


MAX_INSTANCE_ID_LENGTH = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*$"
"""The same rule as a schema pattern (OpenAPI, query models): no control characters."""
# "." and ".." are path segments of their own: a client normalises /instances/../events to another
# resource, so no Location or link could name such an instance. Percent-encoding does not help
# (RFC 3986 makes %2E the same as ".").
_DOT_SEGMENTS = frozenset({".", ".."})


def validate_instance_id(workflow_instance_id: object, field: str = "workflowInstanceId") -> str:
    """A workflow instance id: 1-256 characters, no control characters, not "." or ".."; `field` names where
    the client put it, for the error."""
    if not isinstance(workflow_instance_id, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    if not workflow_instance_id or len(workflow_instance_id) > MAX_INSTANCE_ID_LENGTH:
        raise InvalidInput(
            f"{field} must be 1-{MAX_INSTANCE_ID_LENGTH} characters (got {len(workflow_instance_id)})", field=field
        )
    if _CONTROL.search(workflow_instance_id):
        raise InvalidInput(f"{field} must not contain control characters (U+0000-U+001F, U+007F)", field=field)
    if workflow_instance_id in _DOT_SEGMENTS:
        raise InvalidInput(f"{field} must not be {workflow_instance_id!r} (a path segment of its own)", field=field)
    return workflow_instance_id


def instance_stream_id(workflow_instance_id: str, field: str = "workflowInstanceId") -> str:
    return INSTANCE_PREFIX + validate_instance_id(workflow_instance_id, field)


def validate_stream_id(stream_id: object) -> str:
    if isinstance(stream_id, str) and _STREAM_ID.fullmatch(stream_id):
        return stream_id
    raise InvalidInput("stream id must be 1-300 characters without control characters", field="stream_id")
