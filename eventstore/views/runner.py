"""Keeps a tenant's views current: for each view, the all-stream after its checkpoint, applied in
batches, each batch and the checkpoint past it in one transaction.

- One runner per tenant and view at a time (`TenantViews.session`): a run that finds the lock taken
  does nothing; the holder applies what is there.
- An event a view cannot apply stops that view there: the batch is retried one event at a time, the
  events before the bad one are kept, and the bad one is recorded (`ViewState.stopped_*`, shown in the
  tenant's view health). The next run tries it again; the view never skips it. Other views go on.
- A store that is down is not an event's fault: the run ends with the error and nothing is recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial

from eventstore.errors import StoreUnavailable
from eventstore.models import START, Checkpoint, RecordedEvent
from eventstore.store import EventStore, PendingWork, TenantEvents, ViewSession, ViewWriter, is_erased, shadow_of
from eventstore.telemetry import VIEW_CATCH_UP_DURATION, timed
from eventstore.views.view import Handler, View

log = logging.getLogger(__name__)

BATCH_EVENTS = 500


def _with_payloads(tenant: TenantEvents, apply: Handler) -> Handler:
    """`apply`, handed each event with its payload even when it lives in Blob storage (read and verified
    as every read does). A payload that cannot be read stops the view at its event, like any event the
    view cannot apply; Blob storage that is down ends the run (`StoreUnavailable`)."""

    def handler(writer: ViewWriter, events: Sequence[RecordedEvent]) -> None:
        apply(
            writer,
            [
                e if e.payload is not None else e._replace(payload=tenant.payload_of(e))
                for e in events
                if not is_erased(e.blob_ref)  # its content is gone on purpose: a view rebuilt leaves it out
            ],
        )

    return handler


def _reader(view: View) -> str:
    """The view's name among the readers `PendingWork` keeps track of."""
    return f"view:{view.name}"


@dataclass
class ViewRun:
    """What one run did for one view of one tenant."""

    view: str
    applied: int = 0
    locked: bool = True
    caught_up: bool = False
    stopped: str | None = None
    """Why the view stopped at an event, when it did."""
    error: str | None = None


def _outcome(run: ViewRun) -> str:
    """The `outcome` of a catch-up's timing."""
    if run.error is not None:
        return "error"
    if run.stopped is not None:
        return "stopped"
    return "caught_up" if run.caught_up else "behind"


class ViewRunner:
    """Applies tenants' all-streams to `views`."""

    def __init__(
        self,
        store: EventStore,
        views: Sequence[View],
        *,
        batch_events: int = BATCH_EVENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.views = list(views)
        self.batch_events = batch_events
        self._clock = clock

    def view(self, name: str) -> View:
        found = next((v for v in self.views if v.name == name), None)
        if found is None:
            raise KeyError(name)
        return found

    def run_tenant(self, tenant_id: str, *, run_seconds: float = 30.0, only: Sequence[str] = ()) -> list[ViewRun]:
        """Bring the tenant's views (or those named in `only`) up to date, within `run_seconds`."""
        deadline = self._clock() + run_seconds
        tenant_views = self.store.views(tenant_id)
        runs = []
        for view in self.views:
            if only and view.name not in only:
                continue
            with tenant_views.session(view.name) as session:
                if session is None:
                    runs.append(ViewRun(view.name, locked=False))
                    continue
                with timed(VIEW_CATCH_UP_DURATION, view=view.name) as timing:
                    run = self._drain(session, view, deadline, tenant=self.store.tenant(tenant_id))
                    timing.set(outcome=_outcome(run))
                runs.append(run)
        return runs

    def age_out(self, tenant_id: str, cutoff: datetime) -> dict[str, int | None]:
        """Retention's pass over the tenant's views that keep copies of payload content (`View.age_out`):
        per view, the rows that gave them up, or None when another runner held the view (the next pass does
        it)."""
        tenant_views = self.store.views(tenant_id)
        done: dict[str, int | None] = {}
        for view in self.views:
            if view.age_out is None:
                continue
            with tenant_views.session(view.name) as session:
                done[view.name] = (
                    None if session is None else session.change(view.tables, partial(view.age_out, cutoff=cutoff))
                )
        return done

    def run_all(self, *, run_seconds: float = 30.0, pending: PendingWork | None = None) -> dict[str, list[ViewRun]]:
        """One pass over every registered tenant (the timer's job). With `pending`, a view of a tenant is
        skipped while the tenant's all-stream has not moved since the view was last found settled there."""
        placements = self.store.tenants()
        due: dict[str, list[tuple[View, int, bool]]] = {}
        for view in self.views:
            planned = pending.plan(_reader(view), placements) if pending else [(p, 0, False) for p in placements]
            for placement, head, quiet in planned:
                due.setdefault(placement.tenant_id, []).append((view, head, quiet))
        out: dict[str, list[ViewRun]] = {}
        for tenant_id, views in due.items():
            try:
                runs = self.run_tenant(tenant_id, run_seconds=run_seconds, only=[v.name for v, _, _ in views])
            except Exception as exc:  # one tenant's trouble (its schema not migrated, say) stops no other
                log.error("views: tenant %s not brought up to date: %s: %s", tenant_id, type(exc).__name__, exc)
                continue
            for (view, head, quiet), view_run in zip(views, runs, strict=True):
                if pending and quiet and view_run.caught_up and view_run.stopped is None and view_run.error is None:
                    pending.settle(_reader(view), tenant_id, head)
            out[tenant_id] = runs
        return out

    def rebuild(self, tenant_id: str, name: str, *, progress: Callable[[int, int], None] | None = None) -> ViewRun:
        """Build the view `name` of the tenant again from the start of its all-stream, beside the live one,
        then swap it in: readers see the old view until the swap and the whole new one after it. The live
        view stays current meanwhile. `progress(applied, total)` is called after each batch."""
        view = self.view(name)
        tenant_views = self.store.views(tenant_id)
        total, _ = tenant_views.lag(START)
        shadow = View(shadow_of(view.name), tenant_views.create_shadow(view.name, view.tables), view.apply, "")
        report = (lambda applied: progress(applied, total)) if progress else None
        with tenant_views.session(shadow.name) as session:
            if session is None:
                return ViewRun(view.name, locked=False, error="another rebuild of this view is running")
            tenant = self.store.tenant(tenant_id)
            run = self._drain(session, shadow, float("inf"), report, tenant)
            if not run.caught_up:
                return run  # stopped at an event, or the store failed: the live view is untouched
            deadline = self._clock() + 30.0
            while True:  # the swap waits for the live runner of the moment to finish its batch
                with tenant_views.session(view.name) as live:
                    if live is not None:
                        last = self._drain(session, shadow, float("inf"), None, tenant)
                        if not last.caught_up:
                            return last
                        tenant_views.swap_in_shadow(view.name, view.tables)
                        run.applied += last.applied
                        run.view = view.name
                        return run
                if self._clock() >= deadline:
                    return ViewRun(view.name, locked=False, error="the live view stayed locked; rebuild not swapped")
                time.sleep(0.05)

    def _drain(
        self,
        session: ViewSession,
        view: View,
        deadline: float,
        progress: Callable[[int], None] | None = None,
        tenant: TenantEvents | None = None,
    ) -> ViewRun:
        run = ViewRun(view.name)
        if tenant is not None:
            view = replace(view, apply=_with_payloads(tenant, view.apply))
        checkpoint = session.state().checkpoint
        try:
            while True:
                page = session.read(checkpoint, self.batch_events)
                if page.events:
                    applied, checkpoint, stopped = self._apply(session, view, page.events)
                    run.applied += applied
                    if progress:
                        progress(run.applied)
                    if stopped is not None:
                        run.stopped = stopped
                        return run
                if not page.more:
                    run.caught_up = True
                    return run
                if self._clock() >= deadline:
                    return run
        except StoreUnavailable as exc:
            run.error = str(exc)
            log.warning("views: %s of tenant %s held: %s", view.name, session.view, exc)
            return run

    def _apply(
        self, session: ViewSession, view: View, events: list[RecordedEvent]
    ) -> tuple[int, Checkpoint, str | None]:
        """The whole batch in one transaction; if the handler refuses it, one event at a time up to the
        one it refuses, which is recorded. Returns (events applied, checkpoint, why it stopped)."""
        try:
            return len(events), session.apply(events, view.tables, view.apply), None
        except StoreUnavailable:
            raise
        except Exception:
            log.debug("views: %s refused a batch; applying it one event at a time", view.name, exc_info=True)
        applied = 0
        checkpoint = session.state().checkpoint
        for event in events:
            try:
                checkpoint = session.apply([event], view.tables, view.apply)
            except StoreUnavailable:
                raise
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                log.error("views: %s stopped at event %s: %s", view.name, event.event_id, reason)
                session.stop(event, reason)
                return applied, checkpoint, reason
            applied += 1
        return applied, checkpoint, None
