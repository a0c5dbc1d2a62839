"""The views: a timer that keeps every tenant's views current (the safety net under the nudge that
ingest sends after each append), and each tenant's view health."""

from __future__ import annotations

import logging

import azure.functions as func

from eventstore.http.examples import EXAMPLE_TENANT
from eventstore.http.exchange import json_response, route_param
from eventstore.http.routes import Operation, Reply, http_function
from eventstore.services import services
from eventstore.settings import ViewsSchedule
from eventstore.views import VIEWS
from eventstore.views.health import ViewsHealth, views_health

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger(__name__)

SCHEDULE = ViewsSchedule().views_schedule


@blueprint.function_name("update_views")
@blueprint.timer_trigger(arg_name="timer", schedule=SCHEDULE, run_on_startup=False)
def update_views(timer: func.TimerRequest) -> None:
    runs = services().view_runner.run_all(pending=services().pending)
    applied = sum(r.applied for tenant_runs in runs.values() for r in tenant_runs)
    stopped = [f"{t[:8]}…/{r.view}" for t, tenant_runs in runs.items() for r in tenant_runs if r.stopped]
    if applied or stopped:
        log.info(
            "views: %d event(s) applied%s%s",
            applied, f"; stopped: {', '.join(stopped)}" if stopped else "", " (past due)" if timer.past_due else "",
        )  # fmt: skip


_EXAMPLE = {
    "tenantId": EXAMPLE_TENANT,
    "views": [
        {
            "name": "instances",
            "description": VIEWS[0].description,
            "checkpoint": "1044:17",
            "eventsApplied": 17,
            "lagEvents": 0,
            "lagSeconds": None,
            "updatedAt": "2026-12-01T09:30:00.000000Z",
            "stopped": None,
        }
    ],
    "unplacedTraceEvents": 0,
}

GET_VIEWS_HEALTH = Operation(
    name="get_views_health",
    method="GET",
    route="tenants/{tenantId}/views",
    auth_level="FUNCTION",
    tag="query",
    summary="The tenant's views: checkpoint, lag, the event a view stopped at",
    description="For each view: the last event applied, how many committed events it has not applied "
    "yet and how long the oldest has waited, and, when it could not apply an event, which one and why "
    "(it stays there, never skipping it, and tries again on every run).",
    replies=(Reply(200, "The tenant's views.", ViewsHealth, example=_EXAMPLE),),
    errors=(400, 404, 503),
)


@http_function(blueprint, GET_VIEWS_HEALTH)
def get_views_health(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(views_health(services().store, route_param(req, "tenantId"), VIEWS))


OPERATIONS = (GET_VIEWS_HEALTH,)
