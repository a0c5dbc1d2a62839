"""Deployment-wide metrics for operators (issue 12): the failure report over every tenant, per hour or day,
from each tenant's failure-counts view (`eventstore.query.failure_report` has what it costs). Admin level:
it names every tenant. A tenant's own counts are `GET /tenants/{tenantId}/metrics/failures`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

import azure.functions as func

from eventstore.http.exchange import json_response, parse_query
from eventstore.http.metrics_models import (
    DeploymentFailures,
    DeploymentFailuresQuery,
    FailureFigures,
    MessageTypeFigures,
    SeriesBucket,
    SkippedTenant,
    TenantFigures,
    WorkflowFigures,
)
from eventstore.http.routes import Operation, Reply, http_function
from eventstore.query import failure_report
from eventstore.services import services
from eventstore.views.summary import Counts

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]

_F = TypeVar("_F", bound=FailureFigures)


def _figures(model: type[_F], counts: Counts, **members: Any) -> _F:
    return model(
        started=counts.started,
        succeeded=counts.succeeded,
        failed=counts.failed,
        dead_lettered=counts.dead_lettered,
        failure_rate=counts.failure_rate,
        **members,
    )


_TENANT = "0c4b9a3f6e2d4b1a9c8e7f6a5b4c3d2e"
_EXAMPLE = {
    "granularity": "day",
    "from": "2026-11-25T00:00:00Z",
    "to": "2026-12-02T00:00:00Z",
    "tenantsRead": 1,
    "totals": {"started": 40, "succeeded": 37, "failed": 3, "deadLettered": 1, "failureRate": 0.075},
    "buckets": [
        {"start": "2026-12-01T00:00:00Z", "started": 40, "succeeded": 37, "failed": 3, "deadLettered": 1,
         "failureRate": 0.075},
    ],
    "tenants": [
        {"tenantId": _TENANT, "started": 40, "succeeded": 37, "failed": 3, "deadLettered": 1, "failureRate": 0.075},
    ],
    "topWorkflows": [
        {"tenantId": _TENANT, "workflowId": "deal-won-workflow", "started": 40, "succeeded": 37, "failed": 3,
         "deadLettered": 1, "failureRate": 0.075},
    ],
    "topMessageTypes": [
        {"tenantId": _TENANT, "messageType": "deal.won", "started": 40, "succeeded": 37, "failed": 3,
         "deadLettered": 1, "failureRate": 0.075},
    ],
    "skipped": [
        {"tenantId": "7f3e2d1c0b9a48e7d6c5b4a392817f6e", "reason": "its failure_counts view stopped at event "
         "5f0c2b4e-6a51-4d8e-9f3a-2c1b7d6e9d1e, which it cannot apply: ..."},
    ],
}  # fmt: skip

GET_DEPLOYMENT_FAILURES = Operation(
    name="get_deployment_failures",
    method="GET",
    route="metrics/failures",
    auth_level="ADMIN",
    tag="metrics",
    summary="Failure rates over every tenant, per hour or day: totals, the series, the top failures",
    description="For every tenant, executions started, succeeded and failed and messages dead-lettered in "
    "the range (whole UTC hours or days, counted as the tenant route counts them), summed per tenant and "
    "over the deployment, with the failure rate, the series of every bucket, and the workflows and message "
    "types that failed most. Default range: the last 24 hours (hour) or 7 days (day), the current bucket "
    "included; at most 31 days of hours or 366 days of days (400 naming `from`, or `to`, beyond). Each "
    "tenant's view is brought up to date first; a tenant whose view stopped or is behind is left out of the "
    "sums and listed in `skipped` with why. Costs one indexed read per tenant.",
    query=DeploymentFailuresQuery,
    replies=(Reply(200, "The report.", DeploymentFailures, example=_EXAMPLE),),
    errors=(400, 503),
)


@http_function(blueprint, GET_DEPLOYMENT_FAILURES)
def get_deployment_failures(req: func.HttpRequest) -> func.HttpResponse:
    params = parse_query(req, DeploymentFailuresQuery)
    start, end = failure_report.report_range(
        params.granularity, params.counted_from, params.counted_to, datetime.now(UTC)
    )
    report = failure_report.deployment_failures(services().store, start, end, params.granularity)
    answer = DeploymentFailures(
        granularity=params.granularity,
        counted_from=report.start,
        counted_to=report.end,
        tenants_read=report.tenants_read,
        totals=_figures(FailureFigures, report.totals),
        buckets=[_figures(SeriesBucket, b.counts, start=b.start) for b in report.buckets],
        tenants=[_figures(TenantFigures, t.counts, tenant_id=t.tenant_id) for t in report.tenants],
        top_workflows=[
            _figures(WorkflowFigures, w.counts, tenant_id=w.tenant_id, workflow_id=w.key) for w in report.top_workflows
        ],
        top_message_types=[
            _figures(MessageTypeFigures, m.counts, tenant_id=m.tenant_id, message_type=m.key)
            for m in report.top_message_types
        ],
        skipped=[SkippedTenant(tenant_id=s.tenant_id, reason=s.reason) for s in report.skipped],
    )
    return json_response(answer)


OPERATIONS = (GET_DEPLOYMENT_FAILURES,)
