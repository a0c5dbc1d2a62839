"""Wire models of `POST /tenants/{tenantId}/erasures` (docs/retention.md, "Erasure")."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator, model_validator

from eventstore.http.replay_models import _Asked
from eventstore.store import NO_CONTROL_CHARACTERS

MAX_LISTED = 1000


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _not_null(schema: dict[str, Any]) -> None:
    """The member's schema without its null branch: a member is left out, never sent as null."""
    branches = schema.pop("anyOf", None)
    if branches:
        schema.update(next(b for b in branches if b.get("type") != "null"))
    schema.pop("default", None)


class ErasureSubject(_Wire):
    """Exactly one of its members: whose data to erase."""

    # The schema says "exactly one" too, so that a client (and the API fuzzer) reads the rule from the document.
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"oneOf": [{"required": ["workflowInstanceId"]}, {"required": ["userId"]}]},
    )

    workflow_instance_id: StrictStr | None = Field(
        default=None, alias="workflowInstanceId", min_length=1, max_length=256, pattern=NO_CONTROL_CHARACTERS,
        description="A workflow instance: every event of its stream and the received messages that name it.",
        json_schema_extra=_not_null,
    )  # fmt: skip
    user_id: StrictStr | None = Field(
        default=None, alias="userId", min_length=1, max_length=512, pattern=NO_CONTROL_CHARACTERS,
        description="A user: every event recorded with this user id.", json_schema_extra=_not_null,
    )  # fmt: skip

    @field_validator("workflow_instance_id", "user_id", mode="before")
    @classmethod
    def _not_none(cls, value: Any) -> Any:
        # Runs only for a member that was sent: one left out is None by default, one sent as null is refused.
        if value is None:
            raise ValueError("must be a string; leave the member out instead of null")
        return value

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
