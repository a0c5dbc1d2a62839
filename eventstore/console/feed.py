"""The change feed of a tenant: each sink's checkpoint, what waits and for how long, whether it is failing,
the events it refused (dead letters, each with the sink's status and reason) with a redrive button per sink,
and the open transaction that holds every feed back. A redrive is the publisher's (`FeedPublisher.redrive`,
as `eventstore feed redrive` runs it) and records who asked on each event the sink then took."""

from __future__ import annotations

from eventstore.console.pages import TENANT, Answer, Asked, ConsoleRoute, Missing, Redirect
from eventstore.console.render import path
from eventstore.feed.health import feed_health
from eventstore.services import services

LETTERS_SHOWN = 100


def feed(asked: Asked) -> Answer:
    tenant_id = asked.tenant_id()
    health = feed_health(asked.store, tenant_id)
    letters = asked.store.feed(tenant_id).list_dead_letters(waiting=asked.query("all") != "1", limit=LETTERS_SHOWN)
    return asked.page(
        "feed.html", "Change feed", tenant_id=tenant_id, section="feed", feed=health,
        dead_letters=sum(s.dead_letters for s in health.sinks), letters=letters, shown=LETTERS_SHOWN,
        all_letters=asked.query("all") == "1", redrive=asked.query("redriven"), sink=asked.query("sink"),
    )  # fmt: skip


def redrive(asked: Asked) -> Answer:
    tenant_id = asked.tenant_id()
    sink = asked.route("sink")
    publisher = services().publisher
    if sink not in {s.name for s in publisher.sinks}:
        raise Missing(f"no enabled sink named {sink!r}")
    run = publisher.redrive(tenant_id, sink, by=asked.who)
    # Another publisher holding the sink sends nothing now ("busy"); asking again later works.
    outcome = f"{run.published}-{run.dead_lettered}" if run.locked else "busy"
    return Redirect(path("tenants", tenant_id, "feed", redriven=outcome, sink=sink))


ROUTES = (
    ConsoleRoute("console_feed", f"{TENANT}/feed", feed),
    ConsoleRoute("console_feed_redrive", f"{TENANT}/feed/{{sink}}/redrive", redrive, ("POST",)),
)
