"""`eventstore feed ...`: publish by hand, see a tenant's feed health, watch the local stand-in."""

from __future__ import annotations

import argparse
import time

import requests

from eventstore.store import EventStore

DEFAULT_WATCH_URL = "http://127.0.0.1:7072"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    publish = actions.add_parser("publish", help="publish pending events to the configured sinks now")
    publish.add_argument("--tenant", action="append", help="only this tenant (repeatable; default: every tenant)")
    publish.add_argument("--loop", action="store_true", help="keep publishing until interrupted")
    publish.add_argument("--interval", type=float, default=1.0, help="seconds between runs with --loop")
    redrive = actions.add_parser("redrive", help="send a sink the events it refused before (its dead letters)")
    redrive.add_argument("tenant_id")
    redrive.add_argument("--sink", default="eventgrid", help="eventgrid or webhook:<name> (default %(default)s)")
    status = actions.add_parser("status", help="a tenant's feed health, as GET /api/tenants/{t}/feed answers")
    status.add_argument("tenant_id")
    watch = actions.add_parser("watch", help="print events as they reach the local Event Grid stand-in")
    watch.add_argument("--url", default=DEFAULT_WATCH_URL, help="the stand-in (default %(default)s)")
    watch.add_argument("--from-start", action="store_true", help="also print what arrived before")


def run(args: argparse.Namespace, store: EventStore) -> None:
    if args.action == "publish":
        _publish(store, args.tenant, args.loop, args.interval)
    elif args.action == "redrive":
        _redrive(store, args.tenant_id, args.sink)
    elif args.action == "status":
        from eventstore.feed.health import feed_health

        print(feed_health(store, args.tenant_id).model_dump_json(by_alias=True, indent=2))


def _publish(store: EventStore, tenant_ids: list[str] | None, loop: bool, interval: float) -> None:
    from eventstore.feed.config import sinks_from_settings
    from eventstore.feed.publisher import FeedPublisher

    sinks = sinks_from_settings(store.settings)
    if not sinks:
        print("no sink is configured (EVENTSTORE_EVENTGRID_ENDPOINT, EVENTSTORE_WEBHOOKS__<name>__URL), "
              "or the feed is switched off (EVENTSTORE_FEED_ENABLED)")  # fmt: skip
        return
    publisher = FeedPublisher(store, sinks)
    try:
        while True:
            runs = [publisher.publish_tenant(t) for t in tenant_ids] if tenant_ids else publisher.publish_all()
            for run in runs:
                for sink in run.sinks:
                    if sink.published or sink.dead_lettered or sink.error:
                        print(
                            f"{run.tenant_id} {sink.sink}: {sink.published} published, {sink.dead_lettered} "
                            f"dead-lettered, checkpoint {sink.checkpoint}"
                            + (f", held: {sink.error}" if sink.error else ""),
                            flush=True,
                        )
            if not loop:
                return
            time.sleep(interval)
    finally:
        publisher.close()


def _redrive(store: EventStore, tenant_id: str, sink: str) -> None:
    from eventstore.feed.config import sinks_from_settings
    from eventstore.feed.publisher import FeedPublisher
    from eventstore_local.replay_commands import default_requester

    publisher = FeedPublisher(store, sinks_from_settings(store.settings))
    try:
        run = publisher.redrive(tenant_id, sink, by=default_requester())
    finally:
        publisher.close()
    if not run.locked:
        print(f"{sink} is being published by another process; try again")
        return
    print(
        f"{sink}: {run.published} redriven, {run.dead_lettered} refused again"
        + (f"; stopped: {run.error}" if run.error else "")
    )


def watch(url: str, from_start: bool) -> None:
    """Poll the stand-in's record of accepted events and print one line per event."""
    after = -1
    if not from_start:
        answer = requests.get(f"{url.rstrip('/')}/received?after={2**62}", timeout=10)
        answer.raise_for_status()
        after = answer.json()["next"] - 1  # only what arrives from now on
    while True:
        answer = requests.get(f"{url.rstrip('/')}/received?after={after}", timeout=10)
        answer.raise_for_status()
        page = answer.json()
        for item in page["events"]:
            event = item["event"]
            data = event.get("data") or {}
            print(
                f"{item['arrivedAt']}  {event['type']}  {event.get('subject', '')}  "
                f"#{data.get('sequenceNumber')}  tenant {str(data.get('tenantId', ''))[:12]}…  id {event['id']}",
                flush=True,
            )
        after = page["next"] - 1
        time.sleep(0.5)
