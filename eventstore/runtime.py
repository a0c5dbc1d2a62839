"""The process-wide store the functions use: settings read once, pools opened on first use; and the
change feed's publisher and nudger, built from the same settings."""

from __future__ import annotations

import logging
from functools import cache

from eventstore.feed.nudge import Nudger
from eventstore.feed.publisher import FeedPublisher
from eventstore.settings import Settings
from eventstore.store import EventStore

log = logging.getLogger(__name__)


@cache
def get_store() -> EventStore:
    return EventStore(Settings())


@cache
def get_publisher() -> FeedPublisher:
    from eventstore.feed.config import sinks_from_settings

    store = get_store()
    return FeedPublisher(store, sinks_from_settings(store.settings))


@cache
def get_nudger() -> Nudger:
    publisher = get_publisher()
    # A nudge does not wait out a failing sink: the timer retries with the full patience.
    retry = min(1.0, publisher.retry_seconds)
    # Nor does it drain a long backlog: a few seconds, then the timer takes over, so that a nudge worker
    # is never tied up for long by one tenant.
    return Nudger(
        lambda tenant_id: publisher.publish_tenant(tenant_id, retry_seconds=retry, run_seconds=5.0, skip_failing=True)
    )


def nudge_feed(tenant_id: str) -> None:
    """After an append: publish the tenant now, when the feed and its nudge are on and a sink is set."""
    settings = get_store().settings
    if not (settings.feed_enabled and settings.feed_nudge):
        return
    try:
        if get_publisher().sinks:
            get_nudger().nudge(tenant_id)
    except Exception:  # the append is done and the timer is the safety net: never fail the request
        log.exception("feed: could not nudge the publisher for tenant %s", tenant_id)
