"""The alert routes' answers (docs/alerts.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Incident(_Wire):
    dedup_key: str = Field(alias="dedupKey", description="PagerDuty's dedup_key: tenant, rule and subject.")
    rule: str
    subject: str = Field(description="The workflow the rule watched.")
    state: Literal["open", "resolved"]
    opened_at: AwareDatetime = Field(alias="openedAt")
    resolved_at: AwareDatetime | None = Field(alias="resolvedAt")
    figures: dict[str, Any] = Field(description="The window's figures at the last evaluation.")


class OutboxItem(_Wire):
    id: int
    channel: Literal["pagerduty", "slack", "email"]
    kind: str
    key: str = Field(description="What makes the notification once per channel.")
    state: Literal["pending", "sending", "sent", "refused"]
    attempts: int
    created_at: AwareDatetime = Field(alias="createdAt")
    last_error: str | None = Field(alias="lastError")


class AlertState(_Wire):
    tenant_id: str = Field(alias="tenantId")
    incidents: list[Incident]
    outbox: list[OutboxItem] = Field(description="The latest 200 notifications, oldest first.")


class DeploymentAlertState(_Wire):
    outbox: list[OutboxItem] = Field(description="The latest 200 notifications, oldest first.")
