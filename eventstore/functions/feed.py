"""The change feed: a timer that publishes every tenant's new events to the sinks (the safety net under
the nudge that ingest sends after each append), and the feed's health per tenant.

The schedule is the app setting EVENTSTORE_FEED_SCHEDULE (6-field NCRONTAB, default every 5 s), read
when the functions are indexed, as the host reads binding metadata.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from eventstore.feed.health import FeedHealth, feed_health
from eventstore.http.examples import EXAMPLE_TENANT
from eventstore.http.exchange import json_response, route_param
from eventstore.http.routes import Operation, Reply, http_function
from eventstore.services import services
from eventstore.settings import FeedSchedule

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger(__name__)

SCHEDULE = FeedSchedule().feed_schedule


@blueprint.function_name("publish_feed")
@blueprint.timer_trigger(arg_name="timer", schedule=SCHEDULE, run_on_startup=False)
def publish_feed(timer: func.TimerRequest) -> None:
    if not services().settings.feed_enabled:
        return
    publisher = services().publisher
    if not publisher.sinks:
        return
    runs = publisher.publish_all(pending=services().pending)
    published = sum(r.published for r in runs)
    held = [f"{r.tenant_id[:8]}…/{s.sink}" for r in runs for s in r.sinks if s.error]
    if published or held:
        log.info(
            "feed: %d event(s) published for %d tenant(s)%s%s",
            published, sum(1 for r in runs if r.published), f"; held: {', '.join(held)}" if held else "",
            " (past due)" if timer.past_due else "",
        )  # fmt: skip


_FEED_EXAMPLE: dict[str, Any] = {
    "tenantId": EXAMPLE_TENANT,
    "enabled": True,
    "sinks": [
        {
            "name": "eventgrid",
            "kind": "eventgrid",
            "enabled": True,
            "checkpoint": "7421:1988",
            "pendingEvents": 3,
            "oldestPendingAgeSeconds": 0.42,
            "deadLetters": 0,
            "lastSuccessAt": "2024-05-01T09:31:47.091254+00:00",
            "failingSince": None,
            "lastError": None,
        }
    ],
    "oldestWritingTransaction": None,
}

GET_FEED_HEALTH = Operation(
    name="get_feed_health",
    method="GET",
    route="tenants/{tenantId}/feed",
    auth_level="FUNCTION",
    tag="feed",
    summary="The tenant's change feed: how far each sink got, and what holds it back",
    description="Per sink: checkpoint, events pending and the age of the oldest, dead letters, and the last "
    "failure while a sink keeps failing. Also the oldest open writing transaction on the database: the feed "
    "never passes it, so a forgotten open transaction shows here as a growing age.",
    replies=(Reply(200, "The feed's health.", FeedHealth, example=_FEED_EXAMPLE),),
    errors=(400, 404, 503),
)


@http_function(blueprint, GET_FEED_HEALTH)
def get_feed_health(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(feed_health(services().store, route_param(req, "tenantId")))


OPERATIONS = (GET_FEED_HEALTH,)
