"""The tenant picker and a tenant's overview: messages today, the failure rate now, open alerts, the feed's
and the views' health, faulted instances. Each figure is one query on a view, never a walk of a stream."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from eventstore.console.pages import TENANT, Answer, Asked, ConsoleRoute
from eventstore.feed.health import feed_health
from eventstore.query.instances import list_instances, up_to_date
from eventstore.query.traces import failure_counts
from eventstore.views import VIEWS
from eventstore.views.failure_counts import FAILURE_COUNTS
from eventstore.views.health import views_health
from eventstore.views.messages import MESSAGES, MessageFilter, count_messages

FAULTED_SHOWN = 10
TENANTS_SHOWN = 500


def tenants(asked: Asked) -> Answer:
    wanted = (asked.query("q") or "").strip().lower()
    ids = sorted(p.tenant_id for p in asked.store.tenants())
    matching = [t for t in ids if wanted in t.lower()] if wanted else ids
    return asked.page(
        "tenants.html", "Tenants", tenants=matching[:TENANTS_SHOWN], total=len(ids), matched=len(matching), q=wanted
    )


def overview(asked: Asked) -> Answer:
    store = asked.store
    tenant_id = asked.tenant_id()
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    up_to_date(store, tenant_id, MESSAGES, FAILURE_COUNTS)
    views = store.views(tenant_id)
    messages_today = count_messages(views, MessageFilter(received_from=today))
    failed_today = sum(
        count_messages(views, MessageFilter(received_from=today, status=s)) for s in ("failed", "dead-lettered")
    )
    buckets, _ = failure_counts(store, tenant_id, counted_from=now - timedelta(hours=1))
    started = sum(b.started for b in buckets)
    failed = sum(b.failed for b in buckets)
    faulted, more_faulted = list_instances(store, tenant_id, "faulted", limit=FAULTED_SHOWN)
    incidents = [i for i in store.alerts(tenant_id).incidents() if i.state == "open"]
    return asked.page(
        "overview.html", "Overview", tenant_id=tenant_id, section="overview",
        messages_today=messages_today, failed_today=failed_today, started_hour=started, failed_hour=failed,
        threshold=store.settings.alert_failure_rate, incidents=incidents, faulted=faulted,
        more_faulted=more_faulted is not None, feed=feed_health(store, tenant_id),
        views=views_health(store, tenant_id, VIEWS), now=now,
    )  # fmt: skip


ROUTES = (
    ConsoleRoute("console_tenants", "console", tenants),
    ConsoleRoute("console_overview", TENANT, overview),
)
