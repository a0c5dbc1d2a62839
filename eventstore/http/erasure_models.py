"""Wire models of `POST /tenants/{tenantId}/erasures` (docs/retention.md, "Erasure")."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, model_validator

from eventstore.http.replay_models import _Asked
from eventstore.store import NO_CONTROL_CHARACTERS

MAX_LISTED = 1000


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ErasureSubject(_Wire):
    """Exactly one of its members: whose data to erase."""

    workflow_instance_id: StrictStr | None = Field(
        default=None, alias="workflowInstanceId", min_length=1, max_length=256, pattern=NO_CONTROL_CHARACTERS,
        description="A workflow instance: every event of its stream and the received messages that name it.",
    )  # fmt: skip
    user_id: StrictStr | None = Field(
        default=None, alias="userId", min_length=1, max_length=512, pattern=NO_CONTROL_CHARACTERS,
        description="A user: every event recorded with this user id.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _one(self) -> ErasureSubject:
        if (self.workflow_instance_id is None) == (self.user_id is None):
            raise ValueError("give exactly one of workflowInstanceId and userId")
        return self


class ErasureRequest(_Asked):
    subject: ErasureSubject
    reason: StrictStr = Field(min_length=1, max_length=2000, description="Why (recorded with the erasure).")
    dry_run: StrictBool = Field(default=False, alias="dryRun", description="Only say what would be erased.")


class ErasureAnswer(_Wire):
    erasure_id: str | None = Field(
        alias="erasureId",
        description="The erasure recorded now: its event in the maintenance stream. Null for a dry run, or when "
        "nothing was left to erase (the same erasure asked again).",
    )
    subject: Literal["workflowInstance", "user"]
    matched: int = Field(description="Events the subject's data is in.")
    already_erased: int = Field(alias="alreadyErased", description="Of them, erased before.")
    erased: int = Field(description="Erased now (0 for a dry run).")
    dry_run: bool = Field(alias="dryRun")
    event_ids: list[str] = Field(
        alias="eventIds", description=f"The events erased now (or that would be): the first {MAX_LISTED}."
    )
    blobs_deleted: int = Field(alias="blobsDeleted", description="Large payloads' blobs deleted.")
    dead_letters: int = Field(
        alias="deadLetters",
        description="Dead letters of the ingest queues whose body held the subject: emptied (or that would be).",
    )
