"""What the functions of one process share: the settings, read once; the store, whose pools open on first
use; and the change feed's publisher and nudger, built from the same settings when first needed."""

from __future__ import annotations

import logging
from functools import cache, cached_property

from eventstore.feed.config import sinks_from_settings
from eventstore.feed.nudge import Nudger
from eventstore.feed.publisher import FeedPublisher
from eventstore.settings import Settings
from eventstore.store import EventStore

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
    def nudger(self) -> Nudger:
        publisher = self.publisher
        # A nudge does not wait out a failing sink: the timer retries with the full patience.
        retry = min(1.0, publisher.retry_seconds)
        # Nor does it drain a long backlog: a few seconds, then the timer takes over, so that a nudge worker
        # is never tied up for long by one tenant.
        return Nudger(
            lambda tenant_id: publisher.publish_tenant(
                tenant_id, retry_seconds=retry, run_seconds=5.0, skip_failing=True
            )
        )

    def nudge_feed(self, tenant_id: str) -> None:
        """After an append: publish the tenant now, when the feed and its nudge are on and a sink is set."""
        if not (self.settings.feed_enabled and self.settings.feed_nudge):
            return
        try:
            if self.publisher.sinks:
                self.nudger.nudge(tenant_id)
        except Exception:  # the append is done and the timer is the safety net: never fail the request
            log.exception("feed: could not nudge the publisher for tenant %s", tenant_id)


@cache
def services() -> Services:
    """The process's one `Services`, its settings read from the environment on first use
    (`services.cache_clear()` drops it: the next call reads the settings again)."""
    return Services(Settings())
