"""Wire models of `POST /tenants/{tenantId}/erasures` (docs/retention.md, "Erasure")."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    field_validator,
    model_validator,
)

from eventstore.errors import InvalidInput
from eventstore.event_types import EventType
from eventstore.http.replay_models import _Asked
from eventstore.json_paths import PATTERN, JsonPath
from eventstore.store import NO_CONTROL_CHARACTERS

MAX_LISTED = 1000
NO_SURROGATES_OR_NUL = r"^[^\x00]*$"
"""A value no JSONB copy could hold (NUL) is refused; lone surrogates never survive the JSON body's parse."""


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _not_null(schema: dict[str, Any]) -> None:
    """The member's schema without its null branch: a member is left out, never sent as null."""
    branches = schema.pop("anyOf", None)
    if branches:
        schema.update(next(b for b in branches if b.get("type") != "null"))
    schema.pop("default", None)


MAX_PATH_LENGTH = 512


def _a_path(text: str) -> str:
    if len(text) > MAX_PATH_LENGTH:
        raise ValueError(f"at most {MAX_PATH_LENGTH} characters")
    JsonPath.parse(text)  # its JsonPathError (a ValueError) names what is wrong, and where
    return text


def _an_event_type(text: str) -> str:
    try:
        return EventType.parse(text).value
    except InvalidInput as exc:  # named by its place in this request, not as an event's own type
        raise ValueError(str(exc)) from None


_EVENT_TYPES: dict[str, Any] = {"enum": [t.value for t in EventType]}
_EventTypeName = Annotated[StrictStr, Field(json_schema_extra=_EVENT_TYPES), AfterValidator(_an_event_type)]


class JsonValueSubject(_Wire):
    """A value at JSON paths across event types: redacted in place."""

    value: StrictStr = Field(
        min_length=1, max_length=1000, pattern=NO_SURROGATES_OR_NUL,
        description="The value to erase (a string, as it appears in the payloads: an e-mail address, a name).",
    )  # fmt: skip
    paths: list[
        Annotated[
            StrictStr,
            # The pattern alone bounds the shape in the document: with a declared length beside it, the API
            # fuzzer's boundary-length strings ignore the pattern. The length is checked on its own.
            Field(json_schema_extra={"pattern": PATTERN}),
            AfterValidator(_a_path),
        ]
    ] = Field(
        min_length=1, max_length=20,
        description="Where the value sits in the payloads: $.member, $[\"a name\"], [n], [*] and .* steps, e.g. "
        "$.trigger.parameters.email. Wherever a payload holds exactly the value at one of them, it is replaced by "
        "the marker erased:<erasure id>.",
    )  # fmt: skip
    event_types: list[_EventTypeName] = Field(
        default_factory=list, alias="eventTypes", max_length=50,
        description="Only payloads of these event types (all types when left out).",
    )  # fmt: skip


class ErasureSubject(_Wire):
    """Exactly one of its members: whose data to erase."""

    # The schema says "exactly one" too, so that a client (and the API fuzzer) reads the rule from the document.
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "oneOf": [{"required": ["workflowInstanceId"]}, {"required": ["userId"]}, {"required": ["jsonValue"]}]
        },
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
    json_value: JsonValueSubject | None = Field(
        default=None, alias="jsonValue", json_schema_extra=_not_null,
        description="A value at JSON paths across event types: redacted in place in every payload holding it there.",
    )  # fmt: skip

    @field_validator("workflow_instance_id", "user_id", "json_value", mode="before")
    @classmethod
    def _not_none(cls, value: Any) -> Any:
        # Runs only for a member that was sent: one left out is None by default, one sent as null is refused.
        if value is None:
            raise ValueError("must be a string; leave the member out instead of null")
        return value

    @model_validator(mode="after")
    def _one(self) -> ErasureSubject:
        given = [m for m in (self.workflow_instance_id, self.user_id, self.json_value) if m is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of workflowInstanceId, userId and jsonValue")
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
    subject: Literal["workflowInstance", "user", "jsonValue"]
    mode: Literal["whole payload", "redaction"] = Field(
        description="Whole payloads removed (an instance, a user), or the value redacted in place (jsonValue)."
    )
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
    pending: int = Field(
        default=0,
        description="jsonValue: archived payloads in the Archive tier that may hold the value. Their segments are "
        "being rehydrated (hours); ask the same erasure again after retryAfterSeconds to redact them.",
    )
    retry_after_seconds: int | None = Field(
        default=None, alias="retryAfterSeconds", description="Set when something is pending: when to ask again."
    )
    unreadable: int = Field(
        default=0, description="jsonValue: payloads that could not be read to look for the value (missing or altered)."
    )
