"""The change feed: a timer that publishes every tenant's new events to the sinks (the safety net under
the nudge that ingest sends after each append), and the feed's health per tenant.

The schedule is the app setting EVENTSTORE_FEED_SCHEDULE (6-field NCRONTAB, default every 5 s), read
when the functions are indexed, as the host reads binding metadata.
"""

from __future__ import annotations

import logging
import os

import azure.functions as func

from eventstore.feed.health import feed_health
from eventstore.http.exchange import json_response, route_param
from eventstore.http.routes import http_function
from eventstore.runtime import get_publisher, get_store
from eventstore.settings import Settings

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger(__name__)

SCHEDULE = os.environ.get("EVENTSTORE_FEED_SCHEDULE") or str(Settings.model_fields["feed_schedule"].default)


@blueprint.function_name("publish_feed")
@blueprint.timer_trigger(arg_name="timer", schedule=SCHEDULE, run_on_startup=False)
def publish_feed(timer: func.TimerRequest) -> None:
    if not get_store().settings.feed_enabled:
        return
    publisher = get_publisher()
    if not publisher.sinks:
        return
    runs = publisher.publish_all()
    published = sum(r.published for r in runs)
    held = [f"{r.tenant_id[:8]}…/{s.sink}" for r in runs for s in r.sinks if s.error]
    if published or held:
        log.info(
            "feed: %d event(s) published for %d tenant(s)%s%s",
            published, sum(1 for r in runs if r.published), f"; held: {', '.join(held)}" if held else "",
            " (past due)" if timer.past_due else "",
        )  # fmt: skip


@http_function(blueprint, "get_feed_health")
def get_feed_health(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(feed_health(get_store(), route_param(req, "tenantId")))
