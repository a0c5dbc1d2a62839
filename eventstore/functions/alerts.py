"""Alerts: the timer that evaluates the rules and sends what they queued (every minute by default), the
weekly summary's timer, and the tenant's alert state over HTTP. docs/alerts.md has the story."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import azure.functions as func

from eventstore.alerts.weekly_send import send_weekly
from eventstore.http.alert_models import AlertState, DeploymentAlertState, Incident, OutboxItem
from eventstore.http.exchange import json_response, route_param
from eventstore.http.routes import Operation, Reply, http_function
from eventstore.services import services
from eventstore.settings import AlertsSchedule, WeeklySchedule
from eventstore.store import AlertOutbox

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger(__name__)


@blueprint.function_name("evaluate_alerts")
@blueprint.timer_trigger(arg_name="timer", schedule=AlertsSchedule().alerts_schedule, run_on_startup=False)
def evaluate_alerts(timer: func.TimerRequest) -> None:
    result = services().alert_runner.run()
    if result.opened or result.resolved or result.sent or result.errors:
        log.info(
            "alerts: %d tenant(s); opened %s; resolved %s; %d notice(s) sent; errors %s",
            result.tenants,
            result.opened,
            result.resolved,
            result.sent,
            result.errors,
        )


@blueprint.function_name("send_weekly_summary")
@blueprint.timer_trigger(arg_name="timer", schedule=WeeklySchedule().weekly_schedule, run_on_startup=False)
def send_weekly_summary(timer: func.TimerRequest) -> None:
    email = services().alert_channels.email
    if email is None:
        return
    send_weekly(services().store, services().settings, email, datetime.now(UTC))


GET_ALERTS = Operation(
    name="get_alerts",
    method="GET",
    route="tenants/{tenantId}/alerts",
    auth_level="FUNCTION",
    tag="alerts",
    summary="The tenant's alert incidents and the notifications waiting or refused",
    description="Incidents of the failure-rate rule (open and resolved, with their figures), and the "
    "outbox: each notification with its channel, state (pending, sending, sent, refused) and last error.",
    replies=(Reply(200, "The alert state.", AlertState),),
    errors=(400, 404, 503),
)


@http_function(blueprint, GET_ALERTS)
def get_alerts(req: func.HttpRequest) -> func.HttpResponse:
    alerts = services().store.alerts(route_param(req, "tenantId"))
    incidents = [
        Incident(
            dedup_key=i.dedup_key,
            rule=i.rule,
            subject=i.subject,
            state=i.state,
            opened_at=i.opened_at,
            resolved_at=i.resolved_at,
            figures=i.figures,
        )
        for i in alerts.incidents()
    ]
    return json_response(AlertState(tenant_id=alerts.tenant_id, incidents=incidents, outbox=_outbox(alerts)))


def _outbox(alerts: AlertOutbox) -> list[OutboxItem]:
    return [
        OutboxItem(
            id=row.id,
            channel=row.channel,
            kind=row.kind,
            key=row.notice_key,
            state=row.state,
            attempts=row.attempts,
            created_at=row.created_at,
            last_error=error,
        )
        for row, error in alerts.outbox(limit=200)
    ]


GET_DEPLOYMENT_ALERTS = Operation(
    name="get_deployment_alerts",
    method="GET",
    route="alerts",
    auth_level="ADMIN",
    tag="alerts",
    summary="The deployment's own notifications (the queue dead letters' posts) and their delivery",
    description="Notifications that belong to no tenant: one Slack post per message the ingest queues gave up "
    "on. Each with its channel, state (pending, sending, sent, refused) and last error; a tenant's own are at "
    "GET /tenants/{tenantId}/alerts.",
    replies=(Reply(200, "The deployment's outbox.", DeploymentAlertState),),
    errors=(503,),
)


@http_function(blueprint, GET_DEPLOYMENT_ALERTS)
def get_deployment_alerts(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(DeploymentAlertState(outbox=_outbox(services().store.queue_dead_letters())))


OPERATIONS = (GET_ALERTS, GET_DEPLOYMENT_ALERTS)
