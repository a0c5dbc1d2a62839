"""A tenant's health: the events whose payload is lost (or altered), which reads answer 410 (or 500) for."""

from __future__ import annotations

import azure.functions as func

from eventstore.http.exchange import json_response, route_param
from eventstore.http.models import HEALTH_LIST_LIMIT, PayloadProblemItem, TenantHealth
from eventstore.http.routes import http_function
from eventstore.runtime import get_store
from eventstore.store import EventStore

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]


def tenant_health(store: EventStore, tenant_id: str) -> TenantHealth:
    tenant = store.tenant(tenant_id)
    problems = tenant.payload_problems(HEALTH_LIST_LIMIT)
    count = len(problems) if len(problems) < HEALTH_LIST_LIMIT else tenant.payload_problem_count()
    return TenantHealth(
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


@http_function(blueprint, "get_tenant_health")
def get_tenant_health(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(tenant_health(get_store(), route_param(req, "tenantId")))
