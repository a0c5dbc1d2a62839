"""Webhook signatures, as the Standard Webhooks specification (standardwebhooks.com) defines them, so a
subscriber can verify with that project's libraries or with the few lines of `verify`.

    webhook-id:        an id for the delivery (the same on a retry of the same batch)
    webhook-timestamp: Unix seconds when it was sent
    webhook-signature: v1,<base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}")>

The key is the webhook's secret: with a `whsec_` prefix the rest is base64 (Standard Webhooks' own
format), otherwise the secret's UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
DEFAULT_TOLERANCE = 300
MIN_KEY_BYTES = 16


class SignatureMismatch(ValueError):
    """The delivery was not signed with this secret, or is too old or too new."""


def key_of(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error as exc:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from exc
    return secret.encode()


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(key: bytes, message_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(key, message_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Raise `SignatureMismatch` unless `body` was signed with `secret` within `tolerance` seconds."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        message_id, timestamp = lowered[ID_HEADER], int(lowered[TIMESTAMP_HEADER])
        offered = lowered[SIGNATURE_HEADER].split()
    except (KeyError, ValueError) as exc:
        raise SignatureMismatch(f"missing or malformed signature headers: {exc}") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise SignatureMismatch("timestamp outside the tolerance")
    expected = signature(key_of(secret), message_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise SignatureMismatch("no signature matches")
