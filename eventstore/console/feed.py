"""The change feed of a tenant: each sink's checkpoint, what waits and for how long, whether it is failing,
the events it refused (dead letters), and the open transaction that holds every feed back.

Dead letters are shown as counts per sink: the store keeps each refused event with its status and reason,
but neither it nor the JSON API lists them one by one, and their redrive (`eventstore feed redrive`,
`FeedPublisher.redrive`) records no one, so the console does not offer it (docs/feed.md)."""

from __future__ import annotations

from eventstore.console.pages import TENANT, Answer, Asked, ConsoleRoute
from eventstore.feed.health import feed_health


def feed(asked: Asked) -> Answer:
    tenant_id = asked.tenant_id()
    health = feed_health(asked.store, tenant_id)
    return asked.page(
        "feed.html", "Change feed", tenant_id=tenant_id, section="feed", feed=health,
        dead_letters=sum(s.dead_letters for s in health.sinks),
    )  # fmt: skip


ROUTES = (ConsoleRoute("console_feed", f"{TENANT}/feed", feed),)
