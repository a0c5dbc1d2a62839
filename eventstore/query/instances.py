"""Instances in id order, optionally only those in a given status (their rebuilt state's)."""

from __future__ import annotations

from eventstore.errors import InvalidInput
from eventstore.models import InstanceState
from eventstore.query.history import DEFAULT_PAGE_SIZE, check_limit
from eventstore.query.state import rebuild_state
from eventstore.store import TenantEvents, instance_stream_id

_STREAM_PAGE = 200


def list_instances(
    tenant: TenantEvents, status: str | None, after: str = "", limit: int = DEFAULT_PAGE_SIZE, scan: int = 1000
) -> tuple[list[InstanceState], str | None]:
    """Instances (only those whose rebuilt status is `status`, when given) in instance id order, and the
    instance id to continue after, or None when every instance has been looked at.

    Looks at no more than `scan` instances per call. Status comes from the rebuilt state, so it is
    exactly what `rebuild_state` says.
    """
    check_limit(limit)
    if scan < 1:
        raise InvalidInput("scan must be at least 1", field="scan")
    found: list[InstanceState] = []
    prefix = instance_stream_id("x")[:-1]
    cursor = instance_stream_id(after) if after else ""
    while len(found) < limit and scan > 0:
        streams = tenant.list_stream_ids(prefix, cursor, min(scan, _STREAM_PAGE))
        if not streams:
            return found, None
        for stream in streams:
            scan -= 1
            cursor = stream
            state = rebuild_state(tenant, stream.removeprefix(prefix))
            if status is None or state.status == status:
                found.append(state)
                if len(found) == limit:
                    break
    return found, cursor.removeprefix(prefix)
