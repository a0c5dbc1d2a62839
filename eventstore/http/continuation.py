"""Opaque continuation tokens: base64url JSON of a position and a hash of the filters it belongs to.

A token says where the next page starts (a stream sequence, an all-stream checkpoint, an instance id),
so paging is stable under concurrent appends: positions never move. It is bound to the list and filters
it came from: used with other filters (another tenant, instance, type or time range) it is refused with
400 rather than silently paging through a different result. Tokens are not secret (they hold only
positions within the tenant the route already names), so they are not signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from eventstore.errors import InvalidInput
from eventstore.models import Checkpoint

_VERSION = 1
_MAX_TOKEN_LENGTH = 2048


class _Token(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = Field(ge=1)
    k: str
    p: JsonValue
    f: str


def _filter_hash(kind: str, filters: Mapping[str, Any]) -> str:
    canonical = json.dumps([kind, dict(filters)], sort_keys=True, separators=(",", ":"), default=str)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()[:12]).decode().rstrip("=")


def encode(kind: str, position: JsonValue, filters: Mapping[str, Any]) -> str:
    """A token for `position` in the list `kind` under `filters` (tenant and route ids included)."""
    token = _Token(v=_VERSION, k=kind, p=position, f=_filter_hash(kind, filters))
    text = token.model_dump_json()
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(token: str, kind: str, filters: Mapping[str, Any]) -> JsonValue:
    """The position in `token`, after checking it belongs to the list `kind` under the same `filters`."""
    bad = InvalidInput("continuation is not a token this API handed out", field="continuation")
    if not token or len(token) > _MAX_TOKEN_LENGTH:
        raise bad
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        parsed = _Token.model_validate_json(text)
    except (binascii.Error, ValueError, ValidationError):
        raise bad from None
    if parsed.v != _VERSION or parsed.k != kind:
        raise bad
    if parsed.f != _filter_hash(kind, filters):
        raise InvalidInput(
            "continuation belongs to a query with other filters; repeat the query's filters or start over",
            field="continuation",
        )
    return parsed.p


def encode_checkpoint(checkpoint: Checkpoint, kind: str, filters: Mapping[str, Any]) -> str:
    return encode(kind, [checkpoint.transaction_id, checkpoint.global_position], filters)


def decode_checkpoint(token: str, kind: str, filters: Mapping[str, Any]) -> Checkpoint:
    position = decode(token, kind, filters)
    if (
        isinstance(position, list)
        and len(position) == 2
        and all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in position)
    ):
        xid, global_position = position
        assert isinstance(xid, int) and isinstance(global_position, int)
        return Checkpoint(xid, global_position)
    raise InvalidInput("continuation is not a token this API handed out", field="continuation")


def decode_int(token: str, kind: str, filters: Mapping[str, Any]) -> int:
    position = decode(token, kind, filters)
    if isinstance(position, int) and not isinstance(position, bool) and position >= 0:
        return position
    raise InvalidInput("continuation is not a token this API handed out", field="continuation")


def decode_text(token: str, kind: str, filters: Mapping[str, Any]) -> str:
    position = decode(token, kind, filters)
    if isinstance(position, str):
        return position
    raise InvalidInput("continuation is not a token this API handed out", field="continuation")
