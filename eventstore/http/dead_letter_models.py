"""Wire models of the queue dead-letter routes (`/dead-letters`, docs/alerts.md): what the Functions host gave up
on in the ingest queues, kept byte-exact, and its redrive."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from eventstore.http.replay_models import _Asked
from eventstore.tenancy import TENANT_ID_PATTERN


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class DeadLettersQuery(_Wire):
    tenant_id: str | None = Field(
        default=None, alias="tenantId", pattern=TENANT_ID_PATTERN, description="Only those naming this tenant."
    )
    queue: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", description="Only those of this poison queue."
    )
    waiting: bool = Field(default=False, description="Only those never redriven.")
    after: int = Field(default=0, ge=0, le=2**62, description="Only those kept after this id (the page's `nextAfter`).")
    limit: int = Field(default=100, ge=1, le=500)


class QueueDeadLetter(_Wire):
    id: int
    queue: str = Field(description="The poison queue it was taken from.")
    message_id: str = Field(alias="messageId", description="Its id on the poison queue.")
    tenant_id: str | None = Field(alias="tenantId", description="The tenant it names, onboarded or not.")
    message_type: str | None = Field(alias="messageType")
    workflow_id: str | None = Field(alias="workflowId")
    reason: str = Field(description="Why ingest cannot record it, read again the way its function read it.")
    queued_at: AwareDatetime | None = Field(alias="queuedAt", description="When it was put on the poison queue.")
    dead_at: AwareDatetime = Field(alias="deadAt", description="When it was taken off the poison queue and kept.")
    body_sha256: str = Field(alias="bodySha256", description="SHA-256 of the body, hex.")
    body_encoding: Literal["utf-8", "base64"] = Field(alias="bodyEncoding")
    body: str = Field(description="The message as its function received it: text, or base64 when not UTF-8.")
    was_base64: bool = Field(alias="wasBase64", description="Whether the queue held it base64-encoded (as sent).")
    redriven_at: AwareDatetime | None = Field(alias="redrivenAt")
    redriven_by: str | None = Field(alias="redrivenBy")
    redrive_reason: str | None = Field(alias="redriveReason")
    redrives: int
    erasure_id: str | None = Field(
        alias="erasureId", description="The erasure that emptied its body (it held an erased subject's data)."
    )


class DeadLettersPage(_Wire):
    dead_letters: list[QueueDeadLetter] = Field(alias="deadLetters")
    next_after: int | None = Field(alias="nextAfter", description="Ask again with after=this for the next page.")


class RedriveRequest(_Asked):
    reason: str | None = Field(default=None, min_length=1, max_length=2000, description="Why (recorded).")
