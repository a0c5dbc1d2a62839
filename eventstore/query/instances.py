"""Instances in id order, optionally only those in a given status, of a workflow, or updated in a time
range: served from the instances view, brought up to date first (read-your-writes)."""

from __future__ import annotations

import time
from datetime import datetime

from eventstore.models import InstanceState
from eventstore.query.history import DEFAULT_PAGE_SIZE, check_limit
from eventstore.store import EventStore
from eventstore.views import INSTANCES, ViewRunner
from eventstore.views import list_instances as read_instances

CATCH_UP_SECONDS = 2.0
"""How long a read waits to bring the view up to date (another runner may hold it) before it answers
from the view as it is."""


def catch_up(store: EventStore, tenant_id: str, view: str, seconds: float = CATCH_UP_SECONDS) -> bool:
    """Apply what the tenant's `view` has not seen yet; True when it is up to date with what was
    committed before the call. Another runner holding the view is waited for, within `seconds`."""
    runner = ViewRunner(store, [INSTANCES])
    deadline = time.monotonic() + seconds
    while True:
        [run] = runner.run_tenant(tenant_id, run_seconds=seconds, only=[view])
        if run.locked and (run.caught_up or run.stopped is not None or run.error is not None):
            return run.caught_up
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def list_instances(
    store: EventStore,
    tenant_id: str,
    status: str | None = None,
    after: str = "",
    limit: int = DEFAULT_PAGE_SIZE,
    *,
    workflow_id: str | None = None,
    updated_from: datetime | None = None,
    updated_to: datetime | None = None,
) -> tuple[list[InstanceState], str | None]:
    """Instances (matching every filter given) in instance id order after `after`, and the instance id
    to continue after, or None when this page reached the end."""
    check_limit(limit)
    views = store.views(tenant_id)
    catch_up(store, views.tenant_id, INSTANCES.name)
    states = read_instances(
        views,
        status=status,
        workflow_id=workflow_id,
        updated_from=updated_from,
        updated_to=updated_to,
        after=after,
        limit=limit,
    )
    return states, states[-1].workflow_instance_id if len(states) == limit else None
