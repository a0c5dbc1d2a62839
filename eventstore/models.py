"""The shapes that cross the store's boundary: what comes in, what is stored, what a read returns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, Generic, NamedTuple, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from eventstore.errors import InvalidInput
from eventstore.event_types import EventType

JSON_CONTENT_TYPE = "application/json"
_TEXT_LIMIT = 512


class StreamState(StrEnum):
    """Expected states of a stream that are not an exact version."""

    ANY = "any"
    NO_STREAM = "no_stream"
    STREAM_EXISTS = "stream_exists"


ExpectedVersion = int | StreamState
"""`StreamState`, or the exact version (number of events) the stream must have; 0 means no stream."""


@lru_cache(maxsize=256)
def is_json_content_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or media == "text/json"


class NewEvent(BaseModel):
    """One event to append. `payload` is kept byte-exact; a JSON copy is kept only for queries."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    event_id: UUID
    event_type: EventType
    payload: bytes
    content_type: str = Field(default=JSON_CONTENT_TYPE, min_length=1, max_length=255)
    workflow_id: str | None = Field(default=None, min_length=1, max_length=_TEXT_LIMIT)
    workflow_instance_id: str | None = Field(default=None, min_length=1, max_length=_TEXT_LIMIT)
    user_id: str | None = Field(default=None, max_length=_TEXT_LIMIT)
    correlation_id: str | None = Field(default=None, max_length=_TEXT_LIMIT)
    causation_id: str | None = Field(default=None, max_length=_TEXT_LIMIT)
    source_system: str | None = Field(default=None, max_length=_TEXT_LIMIT)

    @field_validator("event_type", mode="before")
    @classmethod
    def _known_type(cls, value: object) -> EventType:
        return EventType.parse(value)

    @field_validator(
        "content_type",
        "workflow_id",
        "workflow_instance_id",
        "user_id",
        "correlation_id",
        "causation_id",
        "source_system",
    )
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # PostgreSQL text cannot hold U+0000; refuse it here, naming the field, rather than in the database.
        if value is not None and "\x00" in value:
            raise ValueError("must not contain the NUL character")
        return value

    @field_validator("payload", mode="before")
    @classmethod
    def _payload_bytes(cls, value: object) -> object:
        # str is accepted as its UTF-8 bytes; memoryview/bytearray as their bytes.
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, bytearray | memoryview):
            return bytes(value)
        return value

    @classmethod
    def parse(cls, data: dict[str, Any]) -> NewEvent:
        """Build from loose data, raising this package's `InvalidInput` rather than pydantic's error."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise invalid_input_from(exc) from None


def wire_field(loc: Any) -> str | None:
    """A pydantic error's location as the client wrote it: `subject.paths[1]`, not `subject.paths.1`."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return text or None


def invalid_input_from(exc: ValidationError) -> InvalidInput:
    """The first problem of a pydantic error as `InvalidInput` (or `InvalidEventType`)."""
    first = exc.errors()[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, InvalidInput):
        return cause
    field = wire_field(first["loc"])
    return InvalidInput(f"{field}: {first['msg']}" if field else first["msg"], field=field)


class AppendResult(BaseModel):
    """What an append wrote (or, for an idempotent repeat, what the first append wrote)."""

    model_config = ConfigDict(frozen=True)

    stream_id: str
    sequence_numbers: tuple[int, ...]
    global_positions: tuple[int, ...]
    repeated: bool = Field(default=False, description="True when this was an idempotent repeat.")

    @property
    def version(self) -> int:
        """The stream's version after the append: the last sequence number written."""
        return self.sequence_numbers[-1]


@dataclass(frozen=True, slots=True)
class ErasureMark:
    """What an erasure left on an event: which erasure, and, when it redacted the payload rather than removing
    it, the SHA-256 of the bytes the event holds now (its `payload_sha256` stays that of what was received)."""

    erasure_id: UUID
    redacted_sha256: bytes | None


# Reads build one of these per row: a NamedTuple is immutable and built straight from the database row
# (~0.2 µs), where a frozen dataclass costs ~2 µs and pydantic validation more; the values come from the
# database, so there is nothing to validate. An erasure's marks are not in it: they are rare, and each column
# more costs every read of many events (`TenantEvents.marks` reads them for the few that need them).
class RecordedEvent(NamedTuple):
    """An event as stored. `payload` holds the exact bytes received."""

    global_position: int
    transaction_id: int
    stream_id: str
    sequence_number: int
    event_id: UUID
    event_type: str
    payload: bytes | None
    payload_sha256: bytes
    payload_size: int
    blob_ref: str | None
    content_type: str
    workflow_id: str | None
    workflow_instance_id: str | None
    user_id: str | None
    correlation_id: str | None
    causation_id: str | None
    source_system: str | None
    recorded_at: datetime

    def json(self) -> Any:
        """The payload parsed as JSON (only for JSON payloads stored inline)."""
        if self.payload is None:
            raise InvalidInput(f"event {self.event_id} keeps its payload in Blob storage ({self.blob_ref})")
        return json.loads(self.payload)


@dataclass(frozen=True, slots=True, order=True)
class Checkpoint:
    """A position on a tenant's all-stream: (transaction id, global position) of the last event read."""

    transaction_id: int
    global_position: int

    def __str__(self) -> str:
        return f"{self.transaction_id}:{self.global_position}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        try:
            xid, position = text.split(":")
            checkpoint = cls(int(xid), int(position))
        except ValueError:
            raise InvalidInput(f"checkpoint {text!r} is not '<transaction id>:<position>'") from None
        if not (0 <= checkpoint.transaction_id < 2**63 and 0 <= checkpoint.global_position < 2**63):
            raise InvalidInput(f"checkpoint {text!r} is out of range")
        return checkpoint


START = Checkpoint(0, 0)


_Entry = TypeVar("_Entry")


@dataclass(frozen=True, slots=True)
class Page(Generic[_Entry]):
    """One page in all-stream order: the entries, the checkpoint to read after next, and whether more wait.
    `read_all` and search pages hold `RecordedEvent`s; the change feed's hold ids and positions only."""

    events: list[_Entry]
    next_checkpoint: Checkpoint
    more: bool


AllStreamPage = Page[RecordedEvent]


class InstanceState(BaseModel):
    """A workflow instance's state rebuilt from its events (a projection, never stored as the log)."""

    model_config = ConfigDict(frozen=True)

    workflow_instance_id: str
    workflow_id: str | None = None
    state_id: str | None = None
    status: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    last_sequence: int = 0
    last_event_type: str | None = None
    last_error: str | None = None
    paused: bool = False
