"""A tenant's health: the events whose payload is lost (or altered), which reads answer 410 (or 500) for, and
where retention stands (the oldest payload still held, what was moved to cold storage)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import azure.functions as func

from eventstore.http.exchange import json_response, route_param
from eventstore.http.models import HEALTH_LIST_LIMIT, PayloadProblemItem, RetentionHealth, TenantHealth
from eventstore.http.routes import Operation, Reply, http_function
from eventstore.services import services
from eventstore.store import EventStore

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]


def tenant_health(store: EventStore, tenant_id: str) -> TenantHealth:
    tenant = store.tenant(tenant_id)
    problems = tenant.payload_problems(HEALTH_LIST_LIMIT)
    count = len(problems) if len(problems) < HEALTH_LIST_LIMIT else tenant.payload_problem_count()
    days = store.settings.retention_days
    cutoff = datetime.now(UTC) - timedelta(days=days)
    figures = store.retention(tenant.tenant_id).figures(cutoff)
    return TenantHealth(
        retention=RetentionHealth(
            retention_days=days,
            cutoff=cutoff,
            oldest_held_at=figures.oldest_held_at,
            held_past_cutoff=figures.held_before,
            archived_events=figures.archived_events,
            archived_bytes=figures.archived_bytes,
            segments=figures.segments,
        ),
        tenant_id=tenant.tenant_id,
        payload_problem_count=count,
        payload_problems=[
            PayloadProblemItem(
                event_id=str(p.event_id),
                stream_id=p.stream_id,
                sequence_number=p.sequence_number,
                blob_ref=p.blob_ref,
                problem="missing" if p.problem == "missing" else "mismatch",
                first_seen_at=p.first_seen_at,
                last_seen_at=p.last_seen_at,
                times_seen=p.times_seen,
            )
            for p in problems
        ],
    )


GET_TENANT_HEALTH = Operation(
    name="get_tenant_health",
    method="GET",
    route="tenants/{tenantId}/health",
    auth_level="FUNCTION",
    tag="query",
    summary="The tenant's health: events whose payload is lost, and retention",
    description="Events whose payload was found missing from Blob storage (a read answers 410 "
    "payload-missing, naming the blob) or no longer matching its SHA-256, the most recently seen first. "
    "Found when read, or by `eventstore payloads check`. `retention`: the oldest event still holding its "
    "payload in its row, how many past the cutoff still do, and what was moved to cold storage.",
    replies=(Reply(200, "The tenant's health.", TenantHealth),),
    errors=(400, 404, 503),
)


@http_function(blueprint, GET_TENANT_HEALTH)
def get_tenant_health(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(tenant_health(services().store, route_param(req, "tenantId")))


OPERATIONS = (GET_TENANT_HEALTH,)
