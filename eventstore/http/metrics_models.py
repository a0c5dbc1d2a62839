"""Wire models of `GET /metrics/failures`: the deployment-wide failure report (issue 12, metrics). camelCase
and frozen like the other wire models; the OpenAPI document is generated from them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from eventstore.http.models import Rfc3339


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class DeploymentFailuresQuery(_Wire):
    granularity: Literal["hour", "day"] = Field(
        default="hour", description="Buckets of one UTC hour, or of one UTC day (the sum of its hours)."
    )
    counted_from: Rfc3339 | None = Field(
        default=None,
        alias="from",
        description="The first bucket is the one holding this moment (RFC 3339 date-time with an offset). "
        "Default: 24 hours (hour) or 7 days (day) before the end.",
    )
    counted_to: Rfc3339 | None = Field(
        default=None,
        alias="to",
        description="Only buckets that start before this moment. Default: up to the current bucket, included. "
        "The range may cover at most 31 days of hours or 366 days of days.",
    )


class FailureFigures(_Wire):
    started: int = Field(ge=0, description="Executions started (in the bucket of their start).")
    succeeded: int = Field(ge=0, description="Executions that succeeded (in the bucket of their end).")
    failed: int = Field(ge=0, description="Executions that failed (in the bucket of their end).")
    dead_lettered: int = Field(alias="deadLettered", ge=0, description="Failed executions that dead-lettered.")
    failure_rate: float | None = Field(
        alias="failureRate", ge=0, le=1, description="failed / (succeeded + failed); null when none ended."
    )


class SeriesBucket(FailureFigures):
    start: datetime = Field(description="The start of the UTC hour or day.")


class TenantFigures(FailureFigures):
    tenant_id: str = Field(alias="tenantId")


class WorkflowFigures(FailureFigures):
    tenant_id: str = Field(alias="tenantId")
    workflow_id: str | None = Field(alias="workflowId", description="Null: executions without a workflow.")


class MessageTypeFigures(FailureFigures):
    tenant_id: str = Field(alias="tenantId")
    message_type: str | None = Field(
        alias="messageType", description="The trigger's name; null: executions whose message is not recorded."
    )


class SkippedTenant(_Wire):
    tenant_id: str = Field(alias="tenantId")
    reason: str = Field(description="Why its counts are not in the report (its view stopped or is behind).")


class DeploymentFailures(_Wire):
    granularity: Literal["hour", "day"]
    counted_from: datetime = Field(alias="from", description="The start of the first bucket counted.")
    counted_to: datetime = Field(alias="to", description="The end of the last bucket counted (exclusive).")
    tenants_read: int = Field(alias="tenantsRead", ge=0, description="Tenants whose counts are in the report.")
    totals: FailureFigures = Field(description="The sum over the tenants read.")
    buckets: list[SeriesBucket] = Field(description="Every bucket of the range in time order, empty ones too.")
    tenants: list[TenantFigures] = Field(
        description="Every tenant read with anything counted in the range, most failures first."
    )
    top_workflows: list[WorkflowFigures] = Field(
        alias="topWorkflows", description="The workflows (of each tenant) with the most failures, at most 10."
    )
    top_message_types: list[MessageTypeFigures] = Field(
        alias="topMessageTypes", description="The message types (of each tenant) with the most failures, at most 10."
    )
    skipped: list[SkippedTenant] = Field(
        description="Tenants left out of the sums, and why: their failure-counts view could not be brought up to "
        "date (stopped at an event it cannot apply, or behind), or their database did not answer."
    )
