"""Instances in id order, optionally only those in a given status, of a workflow, or updated in a time
range: served from the instances view, brought up to date first (read-your-writes).

Every read of a view first applies what the view has not seen yet, waiting up to `CATCH_UP_SECONDS` for
another runner holding it. When that is not enough (a long backlog, or a view stopped at an event it
cannot apply) the read answers from the view as it is, unless the caller named a position the view must
have applied (`min_position`, the `globalPosition` an append answered): then it raises `ViewBehind`."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from eventstore.errors import ViewBehind
from eventstore.models import START, InstanceState
from eventstore.query.history import DEFAULT_PAGE_SIZE, check_limit
from eventstore.store import EventStore, TenantViews
from eventstore.views import INSTANCES, View, ViewRunner
from eventstore.views import list_instances as read_instances

CATCH_UP_SECONDS = 2.0
"""How long a read waits to bring the view up to date (another runner may hold it) before it answers
from the view as it is."""


def catch_up(
    store: EventStore,
    tenant_id: str,
    view: View,
    seconds: float = CATCH_UP_SECONDS,
    *,
    min_position: int | None = None,
) -> bool:
    """Apply what the tenant's `view` has not seen yet; True when it is up to date with what was
    committed before the call. Another runner holding the view is waited for, within `seconds`. When it
    is not up to date and has not applied the event at `min_position`, raises `ViewBehind`.

    A run that finds nothing more to read is not enough: the all-stream is read only below the oldest
    transaction still open anywhere on the server, so events committed before the call may not be
    readable yet. The view is up to date when no event it has not applied was recorded before the call."""
    tenant_views = store.views(tenant_id)
    if _applied_all(store, tenant_views, view, seconds):
        return True
    if min_position is not None:
        state = tenant_views.states().get(view.name)
        checkpoint = state.checkpoint if state else START
        if tenant_views.holds_after(checkpoint, min_position):
            raise ViewBehind(view.name, min_position, str(checkpoint), state.stopped_reason if state else None)
    return False


def up_to_date(store: EventStore, tenant_id: str, *views: View, min_position: int | None = None) -> str:
    """The tenant's canonical id, once each of `views` has applied what was committed before the call
    (or as far as it could: `ViewBehind` when one has not applied `min_position`)."""
    tenant_views = store.views(tenant_id)  # InvalidTenantId / UnknownTenant first
    for view in views:
        catch_up(store, tenant_views.tenant_id, view, min_position=min_position)
    return tenant_views.tenant_id


def _applied_all(store: EventStore, tenant_views: TenantViews, view: View, seconds: float) -> bool:
    runner = ViewRunner(store, [view])
    called = datetime.now(UTC)
    deadline = time.monotonic() + seconds
    while True:
        [run] = runner.run_tenant(tenant_views.tenant_id, run_seconds=seconds, only=[view.name])
        if run.locked and (run.stopped is not None or run.error is not None):
            return False
        if run.locked and run.caught_up:
            state = tenant_views.states().get(view.name)
            if not tenant_views.recorded_after(state.checkpoint if state else START, called):
                return True
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
    min_position: int | None = None,
) -> tuple[list[InstanceState], str | None]:
    """Instances (matching every filter given) in instance id order after `after`, and the instance id
    to continue after, or None when this page reached the end."""
    check_limit(limit)
    views = store.views(tenant_id)
    catch_up(store, views.tenant_id, INSTANCES, min_position=min_position)
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
