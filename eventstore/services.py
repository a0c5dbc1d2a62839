"""What the functions of one process share: the settings, read once; the store, whose pools open on first
use; the views' runner; the change feed's publisher; and the nudger that runs both after an append. Each
is built from the same settings when first needed."""

from __future__ import annotations

import logging
from functools import cache, cached_property

from eventstore.alerts.config import AlertChannels, channels_from_settings
from eventstore.alerts.runner import AlertRunner
from eventstore.feed.config import sinks_from_settings
from eventstore.feed.nudge import Nudger
from eventstore.feed.publisher import FeedPublisher, TenantRun
from eventstore.replay.driver import ReplayDriver, ReplayQueue
from eventstore.replay.forwarder import Forwarder
from eventstore.settings import Settings, TelemetrySettings
from eventstore.store import EventStore, PendingWork
from eventstore.telemetry import configure_telemetry
from eventstore.views import VIEWS, ViewRunner

log = logging.getLogger(__name__)


class Services:
    """Built from `Settings`; each part is made on first use, once (a handler needs only what it touches)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def store(self) -> EventStore:
        return EventStore(self.settings)

    @cached_property
    def publisher(self) -> FeedPublisher:
        return FeedPublisher(self.store, sinks_from_settings(self.settings))

    @cached_property
    def pending(self) -> PendingWork:
        """Which tenants' readers the timers need to run (shared by the feed's and the views' timers)."""
        return PendingWork(self.store.pools, self.settings.full_pass_seconds)

    @cached_property
    def view_runner(self) -> ViewRunner:
        return ViewRunner(self.store, VIEWS)

    @cached_property
    def nudger(self) -> Nudger:
        publisher, runner = self.publisher, self.view_runner
        feed_nudged = self.settings.feed_enabled and self.settings.feed_nudge
        # A nudge does not wait out a failing sink: the timer retries with the full patience.
        retry = min(1.0, publisher.retry_seconds)

        def catch_up(tenant_id: str) -> TenantRun:
            # Nor does it drain a long backlog: a few seconds, then the timers take over, so that a nudge
            # worker is never tied up for long by one tenant.
            runner.run_tenant(tenant_id, run_seconds=5.0)
            if not (feed_nudged and publisher.sinks):
                return TenantRun(tenant_id)
            return publisher.publish_tenant(tenant_id, retry_seconds=retry, run_seconds=5.0, skip_failing=True)

        return Nudger(catch_up)

    @cached_property
    def forwarder(self) -> Forwarder:
        return Forwarder(self.store, self.settings)

    @cached_property
    def replay_driver(self) -> ReplayDriver:
        settings = self.settings
        return ReplayDriver(self.store, settings, lambda: ReplayQueue(settings))

    @cached_property
    def alert_channels(self) -> AlertChannels:
        return channels_from_settings(self.settings)

    @cached_property
    def alert_runner(self) -> AlertRunner:
        return AlertRunner(self.store, self.settings, self.pending, self.alert_channels)

    def nudge(self, tenant_id: str) -> None:
        """After an append: bring the tenant's views up to date and publish its feed now (when the feed and
        its nudge are on and a sink is set), in the background."""
        try:
            self.nudger.nudge(tenant_id)
        except Exception:  # the append is done and the timers are the safety net: never fail the request
            log.exception("could not nudge the views and feed of tenant %s", tenant_id)


@cache
def services() -> Services:
    """The process's one `Services`, its settings read from the environment on first use
    (`services.cache_clear()` drops it: the next call reads the settings again). The first call also turns
    on the export of metrics to Application Insights when it is configured (once per process)."""
    configure_telemetry(TelemetrySettings())
    return Services(Settings())
