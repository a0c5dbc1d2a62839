"""The failure-rate rule: per tenant and workflow, the executions that ended among those started in the last
`EVENTSTORE_ALERT_WINDOW_MINUTES` (60); more than `EVENTSTORE_ALERT_FAILURE_RATE` (5 %) of them failed, with
at least `EVENTSTORE_ALERT_MIN_EXECUTIONS` (20) in the window, opens an incident and pages; back at or under
the rate, the incident resolves and the page with it. The incident is a row (`TenantAlerts`): a restart, a
second instance or a re-evaluation neither pages twice for it nor forgets to resolve it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from eventstore.alerts.categories import admin_url, replay_url
from eventstore.settings import Settings
from eventstore.store import Notice, TenantAlerts, WindowFigures

RULE = "failure-rate"
PAGERDUTY, SLACK = "pagerduty", "slack"


def dedup_key(tenant_id: str, workflow_id: str | None) -> str:
    """The incident's key, stable for (tenant, rule, workflow): PagerDuty groups a trigger and its resolve
    by it."""
    return f"eventstore/{tenant_id}/{RULE}/{workflow_id or '-'}"


def failures_link(settings: Settings, tenant_id: str, workflow_id: str | None, start: datetime, end: datetime) -> str:
    """The admin page of the failures behind an alert."""
    window = {"workflow": workflow_id, "from": start.isoformat(), "to": end.isoformat()}
    return admin_url(settings.public_url, tenant_id, "failures", window)


def replay_link(settings: Settings, tenant_id: str, workflow_id: str | None, start: datetime, end: datetime) -> str:
    """A bulk replay of the failed messages behind an alert, filled in (it still asks before it sends)."""
    return replay_url(settings.public_url, tenant_id, start, end, workflow_id=workflow_id)


@dataclass
class Evaluation:
    """What one evaluation of one tenant did."""

    opened: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    open: int = 0
    """Incidents still open afterwards."""


def _figures(window: WindowFigures | None, settings: Settings, start: datetime, end: datetime) -> dict[str, Any]:
    executions = window.executions if window else 0
    failed = window.failed if window else 0
    return {
        "executions": executions,
        "failed": failed,
        "failureRate": round(failed / executions, 4) if executions else 0.0,
        "threshold": settings.alert_failure_rate,
        "minExecutions": settings.alert_min_executions,
        "windowMinutes": settings.alert_window_minutes,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "lastFailedAt": window.last_failed_at.isoformat() if window and window.last_failed_at else None,
    }


def _fields(tenant_id: str, workflow_id: str | None, figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "Tenant": tenant_id,
        "Workflow": workflow_id or "(none)",
        "Failed": f"{figures['failed']} of {figures['executions']} ({figures['failureRate']:.1%})",
        "Threshold": f"{figures['threshold']:.1%} over {figures['windowMinutes']} min",
    }


def _over(window: WindowFigures | None, settings: Settings) -> bool:
    """Failing more than the threshold (exact figures, not the rounded rate shown), whatever the volume."""
    return (
        window is not None and window.executions > 0 and window.failed / window.executions > settings.alert_failure_rate
    )


def _breaching(window: WindowFigures, settings: Settings) -> bool:
    return (
        window.executions >= settings.alert_min_executions
        and window.failed / window.executions > settings.alert_failure_rate
    )


def _summary(tenant_id: str, workflow_id: str | None, figures: dict[str, Any]) -> str:
    return (
        f"Workflow {workflow_id or '(none)'}: {figures['failed']} of {figures['executions']} executions failed in "
        f"the last {figures['windowMinutes']} min ({figures['failureRate']:.0%} > {figures['threshold']:.0%}), "
        f"tenant {tenant_id}"
    )


def _trigger(
    settings: Settings, tenant_id: str, workflow_id: str | None, figures: dict[str, Any], opened: datetime
) -> list[Notice]:
    key = dedup_key(tenant_id, workflow_id)
    start, end = datetime.fromisoformat(figures["from"]), datetime.fromisoformat(figures["to"])
    links = [
        {"href": failures_link(settings, tenant_id, workflow_id, start, end), "text": "The failures"},
        {"href": replay_link(settings, tenant_id, workflow_id, start, end), "text": "Replay the failed messages"},
    ]
    summary = _summary(tenant_id, workflow_id, figures)
    notices = []
    if settings.pagerduty_routing_key is not None:
        body = {
            "action": "trigger",
            "dedup_key": key,
            "summary": summary,
            "source": f"eventstore/{tenant_id}",
            "severity": settings.alert_severity,
            "custom_details": {**figures, "tenantId": tenant_id, "workflowId": workflow_id},
            "links": links,
        }
        notices.append(Notice(PAGERDUTY, f"{key}@{opened.isoformat()}/trigger", key, "trigger", body))
    if settings.slack_webhook_url is not None:
        body = {
            "kind": "failure-rate",
            "state": "open",
            "summary": f":rotating_light: {summary}",
            "group": f"failure rate / {workflow_id or '(none)'}",
            "fields": _fields(tenant_id, workflow_id, figures),
            "links": links,
        }
        notices.append(Notice(SLACK, f"{key}@{opened.isoformat()}/open", key, "failure-rate", body))
    return notices


def _resolve(
    settings: Settings, tenant_id: str, workflow_id: str | None, figures: dict[str, Any], opened: datetime
) -> list[Notice]:
    key = dedup_key(tenant_id, workflow_id)
    notices = []
    if settings.pagerduty_routing_key is not None:
        notices.append(
            Notice(
                PAGERDUTY,
                f"{key}@{opened.isoformat()}/resolve",
                key,
                "resolve",
                {"action": "resolve", "dedup_key": key},
            )
        )
    if settings.slack_webhook_url is not None:
        summary = (
            f"Resolved: workflow {workflow_id or '(none)'} of tenant {tenant_id} is back at "
            f"{figures['failureRate']:.0%} ({figures['failed']} of {figures['executions']} in the last "
            f"{figures['windowMinutes']} min)"
        )
        body = {
            "kind": "failure-rate",
            "state": "resolved",
            "summary": f":white_check_mark: {summary}",
            "group": f"failure rate / {workflow_id or '(none)'}",
            "fields": _fields(tenant_id, workflow_id, figures),
            "links": [],
        }
        notices.append(Notice(SLACK, f"{key}@{opened.isoformat()}/resolved", key, "failure-rate", body))
    return notices


def evaluate(alerts: TenantAlerts, settings: Settings, now: datetime) -> Evaluation:
    """Evaluate the rule for one tenant at `now`: open what breaches, resolve what no longer does."""
    start = now - timedelta(minutes=settings.alert_window_minutes)
    windows = {w.workflow_id: w for w in alerts.window(start)}
    open_incidents = {i.subject: i for i in alerts.incidents("open") if i.rule == RULE}
    result = Evaluation()
    for workflow_id in sorted(set(windows) | {_workflow(s) for s in open_incidents}, key=lambda w: w or ""):
        window = windows.get(workflow_id)
        figures = _figures(window, settings, start, now)
        key = dedup_key(alerts.tenant_id, workflow_id)
        incident = open_incidents.get(_subject(workflow_id))
        if window is not None and _breaching(window, settings):
            # The notices name the opening time, so a later incident under the same key pages again.
            if alerts.open_incident(
                key,
                RULE,
                _subject(workflow_id),
                figures,
                _trigger(settings, alerts.tenant_id, workflow_id, figures, now),
            ):
                result.opened.append(key)
        elif incident is not None and not _over(window, settings):
            notices = _resolve(settings, alerts.tenant_id, workflow_id, figures, incident.opened_at)
            if alerts.resolve_incident(key, incident.opened_at, figures, notices):
                result.resolved.append(key)
    result.open = len([i for i in alerts.incidents("open") if i.rule == RULE])
    return result


_NO_WORKFLOW = "-"


def _subject(workflow_id: str | None) -> str:
    return workflow_id if workflow_id is not None else _NO_WORKFLOW


def _workflow(subject: str) -> str | None:
    return None if subject == _NO_WORKFLOW else subject
