"""Opaque continuation tokens: a position, bound to the list and filters it came from, signed.

A token says where the next page starts (a stream sequence, an all-stream checkpoint, an instance id),
so paging is stable under concurrent appends: positions never move. It is bound to the list and filters
it came from: used with other filters (another tenant, instance, type or time range) it is refused with
400 rather than silently paging through a different result.

Tokens are signed (HMAC-SHA256 with `EVENTSTORE_CONTINUATION_KEY`, truncated to 128 bits) so that a client
cannot mint one: what a token decodes to is a value this API wrote. It is still checked like a query
parameter after the signature, so a token signed with a leaked key cannot carry a NUL or an out-of-range
number into a query. Format: `<base64url JSON>.<base64url MAC>`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from eventstore.errors import InvalidInput
from eventstore.models import Checkpoint
from eventstore.query import MAX_SEQUENCE
from eventstore.settings import Settings
from eventstore.store import validate_instance_id

log = logging.getLogger(__name__)

_VERSION = 2
MAX_TOKEN_LENGTH = 2048
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{1,2000}\.[A-Za-z0-9_-]{22}$"  # noqa: S105 (a shape, not a secret)
"""What every token looks like (the OpenAPI document says so too)."""
_MAC_BYTES = 16
_MAX_BIGINT = 2**63 - 1
_MAX_XID8 = 2**64 - 1


class _Token(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = Field(ge=1)
    k: str
    p: JsonValue
    f: str


@cache
def _process_key() -> bytes:
    log.warning(
        "EVENTSTORE_CONTINUATION_KEY is not set: continuation tokens are signed with a key of this process "
        "only, so another instance (or this one after a restart) refuses them; set it in every deployment"
    )
    return secrets.token_bytes(32)


def key_of(settings: Settings) -> bytes:
    """The signing key from settings (or, when none is set, one made for this process)."""
    text = settings.continuation_key.get_secret_value()
    return text.encode("utf-8") if text else _process_key()  # its length is checked by Settings


def _filter_hash(kind: str, filters: Mapping[str, Any]) -> str:
    canonical = json.dumps([kind, dict(filters)], sort_keys=True, separators=(",", ":"), default=str)
    return _b64(hashlib.sha256(canonical.encode()).digest()[:12])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()[:_MAC_BYTES])


def _not_ours() -> InvalidInput:
    return InvalidInput("continuation is not a token this API handed out; start over without it", field="continuation")


def encode(key: bytes, kind: str, position: JsonValue, filters: Mapping[str, Any]) -> str:
    """A token for `position` in the list `kind` under `filters` (tenant and route ids included)."""
    token = _Token(v=_VERSION, k=kind, p=position, f=_filter_hash(kind, filters))
    body = _b64(token.model_dump_json().encode())
    return f"{body}.{_mac(key, body)}"


def decode(key: bytes, token: str, kind: str, filters: Mapping[str, Any]) -> JsonValue:
    """The position in `token`, after checking its signature and that it belongs to the list `kind` under
    the same `filters`."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise _not_ours()
    body, dot, mac = token.partition(".")
    if not dot or not hmac.compare_digest(mac.encode("ascii", "replace"), _mac(key, body).encode("ascii")):
        raise _not_ours()
    try:
        parsed = _Token.model_validate_json(_unb64(body))
    except (binascii.Error, ValueError, ValidationError):
        raise _not_ours() from None
    if parsed.v != _VERSION or parsed.k != kind:
        raise _not_ours()
    if parsed.f != _filter_hash(kind, filters):
        raise InvalidInput(
            "continuation belongs to a query with other filters; repeat the query's filters or start over",
            field="continuation",
        )
    return parsed.p


def audit_filters(
    tenant_id: str,
    recorded_from: datetime | None,
    recorded_to: datetime | None,
    event_types: list[str],
    workflow_id: str | None,
    instance_id: str | None,
) -> dict[str, Any]:
    """What an audit token is bound to: every filter of the search, so a token is refused with others."""
    return {
        "tenant": tenant_id,
        "from": recorded_from.isoformat() if recorded_from else None,
        "to": recorded_to.isoformat() if recorded_to else None,
        "eventTypes": event_types,
        "workflowId": workflow_id,
        "instanceId": instance_id,
    }


def _is_int(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def encode_checkpoint(key: bytes, checkpoint: Checkpoint, kind: str, filters: Mapping[str, Any]) -> str:
    return encode(key, kind, [checkpoint.transaction_id, checkpoint.global_position], filters)


def decode_checkpoint(key: bytes, token: str, kind: str, filters: Mapping[str, Any]) -> Checkpoint:
    position = decode(key, token, kind, filters)
    if isinstance(position, list) and len(position) == 2:
        xid, global_position = position
        if _is_int(xid, 0, _MAX_XID8) and _is_int(global_position, 0, _MAX_BIGINT):
            assert isinstance(xid, int) and isinstance(global_position, int)
            return Checkpoint(xid, global_position)
    raise _not_ours()


def decode_sequence(key: bytes, token: str, kind: str, filters: Mapping[str, Any]) -> int:
    position = decode(key, token, kind, filters)
    if _is_int(position, 1, MAX_SEQUENCE):
        assert isinstance(position, int)
        return position
    raise _not_ours()


def decode_instance_id(key: bytes, token: str, kind: str, filters: Mapping[str, Any]) -> str:
    position = decode(key, token, kind, filters)
    try:
        return validate_instance_id(position, "continuation")
    except InvalidInput:
        raise _not_ours() from None
