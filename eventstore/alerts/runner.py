"""The alert timer's work: evaluate the rules for the tenants that may have changed, and send what the
outbox holds. A tenant is visited when its all-stream moved since it was last found quiet (the pending-work
signal), or while it is marked as having an open incident or unsent notifications; an idle deployment costs
one catalog query per database and one read of the marks per run.

Each run first takes what the ingest queues' poison queues hold and keeps it as queue dead letters
(`poison_queues`), and ends by sending the deployment's own outbox (their Slack posts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from eventstore.alerts import failure_rate
from eventstore.alerts.poison_queues import PoisonQueues, drain
from eventstore.alerts.sender import Channels, Sender, admin_link
from eventstore.query import up_to_date
from eventstore.settings import Settings
from eventstore.store import EventStore, PendingWork
from eventstore.views import EXECUTIONS, INSTANCES, MESSAGES

log = logging.getLogger(__name__)

READER = "alerts"
"""The alert rules' name in the pending-work signal."""
NOTICE_LOOKBACK = timedelta(days=7)
"""Dead letters and faults are collected from the views this far back (each once: see `TenantAlerts.collect`);
a view further behind than this shows in health long before."""


@dataclass
class AlertRun:
    tenants: int = 0
    opened: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    sent: int = 0
    dead_letters: int = 0
    """Poison messages kept as queue dead letters in this run."""
    errors: list[str] = field(default_factory=list)


class AlertRunner:
    def __init__(
        self,
        store: EventStore,
        settings: Settings,
        pending: PendingWork,
        channels: Channels,
        *,
        poison: PoisonQueues | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings
        self.pending = pending
        self.sender = Sender(store, settings, channels, clock=clock)
        self.poison = poison if poison is not None else PoisonQueues.from_settings(settings)
        self.clock = clock

    def run(self) -> AlertRun:
        result = AlertRun()
        if not self.settings.alerts_enabled:
            return result
        if self.poison is not None:
            try:
                drained = drain(
                    self.store, self.settings, self.poison, notify=self.settings.slack_webhook_url is not None
                )
                result.dead_letters += drained.kept
                result.errors += drained.errors
            except Exception as exc:  # the tenants' alerts still run; the messages wait on their queue
                log.exception("alerts: the poison queues could not be drained")
                result.errors.append(f"poison queues: {exc}")
        marked = dict(self.store.registry.alerting())
        heads = {p.tenant_id: head for p, head, _ in self.pending.plan(READER, self.store.tenants())}
        for tenant_id in sorted(set(marked) | set(heads)):
            try:
                self.run_tenant(tenant_id, result, marked.get(tenant_id), heads.get(tenant_id))
            except Exception as exc:  # one tenant's trouble is logged and shown; the others go on
                log.exception("alerts of tenant %s could not be evaluated or sent", tenant_id)
                result.errors.append(f"{tenant_id}: {exc}")
        try:
            result.sent += self.sender.send_tenant(self.store.queue_dead_letters())
        except Exception as exc:
            log.exception("alerts: the deployment's notices could not be sent")
            result.errors.append(f"deployment: {exc}")
        return result

    def run_tenant(
        self, tenant_id: str, result: AlertRun, marked_at: datetime | None = None, head: int | None = None
    ) -> None:
        now = self.clock()
        tenant_id = up_to_date(self.store, tenant_id, EXECUTIONS, MESSAGES, INSTANCES)
        if marked_at is None:
            marked_at = dict(self.store.registry.alerting()).get(tenant_id)
        alerts = self.store.alerts(tenant_id)
        result.tenants += 1
        failed = False
        evaluation = None
        try:
            evaluation = failure_rate.evaluate(alerts, self.settings, now)
            result.opened += evaluation.opened
            result.resolved += evaluation.resolved
        except Exception as exc:  # the notices already queued still go out
            log.exception("alerts: the rules of tenant %s could not be evaluated", tenant_id)
            result.errors.append(f"{tenant_id}: evaluate: {exc}")
            failed = True
        try:
            slack = ["slack"] if self.settings.slack_webhook_url is not None else []
            key, faulted = self.settings.pagerduty_routing_key, self.settings.alert_faulted_pagerduty
            paged = ["pagerduty"] if key is not None and faulted else []
            alerts.collect(now - NOTICE_LOOKBACK, slack, slack + paged, admin_link(self.settings, tenant_id) + "/")
        except Exception as exc:
            log.exception("alerts: the notices of tenant %s could not be collected", tenant_id)
            result.errors.append(f"{tenant_id}: collect: {exc}")
            failed = True
        result.sent += self.sender.send_tenant(alerts)
        open_incidents = evaluation.open if evaluation is not None else len(alerts.incidents("open"))
        active = failed or open_incidents > 0 or alerts.unsent() > 0
        if active:  # (again: a stale unmark by another instance then matches nothing)
            self.store.registry.mark_alerting(tenant_id)
        elif marked_at is not None:
            self.store.registry.unmark_alerting(tenant_id, marked_at)
        if head is not None and not active:
            self.pending.settle(READER, tenant_id, head)
