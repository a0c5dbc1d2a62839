"""Payloads moved to cold storage by retention (docs/retention.md): what an archived event's row points at,
and how its bytes are sealed.

**Segments.** An archive batch is one blob in the tenant's cold container (`container_name_for(tenant,
"eventstore-cold")`) holding many payloads one after another; the row keeps `cold:<container>/<segment>#<offset>
+<length>` and a read fetches that range. One blob per event would cost a write operation per event (Cool and
Archive writes are the dearest) and, measured on Azurite, 380 times the time of one segment per 300 events.

**Sealing (crypto-shredding).** Each payload is encrypted with a data key of its own (AES-256-GCM, the
event id as associated data), and the data key is kept in the event's row (`archive_key`), wrapped with the
archive key (AES-256-GCM again: the key-encrypting key, from `EVENTSTORE_ARCHIVE_KEY`, a Key Vault reference
in Azure, or a local key file). A segment cannot be rewritten cheaply (Archive tier: not at all without
rehydrating it), so erasing an archived payload destroys its data key in the row: its bytes in the segment
become noise, and nothing else in the segment is touched. Reading needs the row (the wrapped key), the archive
key and the segment; the SHA-256 kept in the row verifies what decrypts.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import sql

from eventstore.errors import PayloadIntegrityError, StoreUnavailable
from eventstore.models import RecordedEvent
from eventstore.settings import Settings
from eventstore.store.schema import EVENTS, table

REHYDRATION_RETRY_SECONDS = 3600
"""What a read of a payload in the Archive tier tells the caller to wait before trying again: standard
rehydration takes up to 15 hours (usually under 1 for small blobs, Azure says); high priority under 1."""
COLD_PREFIX = "cold:"
COLD_LOGICAL_NAME = "eventstore-cold"
"""The cold container's logical name: its container is `container_name_for(tenant_id, COLD_LOGICAL_NAME)`."""
_NONCE = 12
_KID = 8
_REF = re.compile(
    r"cold:(?P<container>[a-z0-9-]{3,63})/(?P<segment>[^#]{1,1024})#(?P<offset>\d{1,15})\+(?P<length>\d{1,15})"
)


@dataclass(frozen=True)
class ColdRef:
    container: str
    segment: str
    offset: int
    length: int

    def __str__(self) -> str:
        return f"{COLD_PREFIX}{self.container}/{self.segment}#{self.offset}+{self.length}"

    @classmethod
    def parse(cls, ref: str) -> ColdRef:
        match = _REF.fullmatch(ref)
        if match is None:
            raise PayloadIntegrityError(f"{ref!r} is not a cold-storage reference")
        return cls(match["container"], match["segment"], int(match["offset"]), int(match["length"]))


def is_cold(blob_ref: str | None) -> bool:
    return blob_ref is not None and blob_ref.startswith(COLD_PREFIX)


def archive_key_of(conn: psycopg.Connection[Any], *, schema: str, event: RecordedEvent) -> bytes | None:
    """The wrapped data key kept in an archived event's row (None: none, or destroyed)."""
    row = conn.execute(
        sql.SQL("SELECT archive_key FROM {} WHERE stream_id = %s AND sequence_number = %s AND recorded_at = %s").format(
            table(schema, EVENTS)
        ),
        (event.stream_id, event.sequence_number, event.recorded_at),
    ).fetchone()
    return bytes(row[0]) if row and row[0] is not None else None


class ArchiveKeys:
    """The archive key (key-encrypting key): wraps and unwraps each archived payload's data key."""

    def __init__(self, key: bytes, previous: Sequence[bytes] = ()) -> None:
        self._aead = AESGCM(self._checked(key))
        self.kid = self.kid_of(key)
        # Keys replaced by `key` in a rotation: they still open what they sealed, until re-wrapped.
        self._previous = {self.kid_of(k): AESGCM(self._checked(k)) for k in previous if self.kid_of(k) != self.kid}

    @staticmethod
    def _checked(key: bytes) -> bytes:
        if len(key) != 32:
            raise ValueError(f"an archive key must be 32 bytes (base64 of 32 bytes); got {len(key)}")
        return key

    @staticmethod
    def kid_of(key: bytes) -> bytes:
        """A key's id, kept at the head of each data key it wraps: never the key, nor enough to find it."""
        return hashlib.sha256(b"eventstore-archive-key:" + key).digest()[:_KID]

    @property
    def previous_kids(self) -> list[bytes]:
        return sorted(self._previous)

    @classmethod
    def from_settings(cls, settings: Settings) -> ArchiveKeys | None:
        """The key of EVENTSTORE_ARCHIVE_KEY, else of the file EVENTSTORE_ARCHIVE_KEY_FILE, else None; with the
        keys it replaced (EVENTSTORE_ARCHIVE_PREVIOUS_KEYS)."""
        text: str | None = None
        if settings.archive_key is not None:
            text = settings.archive_key.get_secret_value()
        elif settings.archive_key_file:
            try:
                text = Path(settings.archive_key_file).read_text()
            except OSError as exc:
                raise StoreUnavailable(f"the archive key file cannot be read: {exc.strerror}") from exc
        if text is None:
            return None
        previous = settings.archive_previous_keys.get_secret_value() if settings.archive_previous_keys else ""
        try:
            return cls(
                base64.b64decode(text.strip(), validate=True),
                [base64.b64decode(p.strip(), validate=True) for p in previous.split(",") if p.strip()],
            )
        except (ValueError, TypeError) as exc:
            raise StoreUnavailable(f"an archive key is not base64 of 32 bytes: {exc}") from exc

    @staticmethod
    def new_key_text() -> str:
        """A fresh archive key, as EVENTSTORE_ARCHIVE_KEY takes it."""
        return base64.b64encode(os.urandom(32)).decode("ascii")

    def seal(self, payload: bytes, event_id: UUID) -> tuple[bytes, bytes]:
        """(the segment entry: nonce and ciphertext, the wrapped data key for the row)."""
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(_NONCE)
        entry = nonce + AESGCM(data_key).encrypt(nonce, payload, event_id.bytes)
        wrap_nonce = os.urandom(_NONCE)
        wrapped = self.kid + wrap_nonce + self._aead.encrypt(wrap_nonce, data_key, event_id.bytes)
        return entry, wrapped

    def _data_key(self, wrapped: bytes, event_id: UUID) -> bytes:
        kid = wrapped[:_KID]
        aead = self._aead if kid == self.kid else self._previous.get(kid)
        if aead is None:
            raise PayloadIntegrityError(
                f"the payload of event {event_id} was archived under another archive key ({kid.hex()}): "
                "give it in EVENTSTORE_ARCHIVE_PREVIOUS_KEYS"
            )
        try:
            return aead.decrypt(wrapped[_KID : _KID + _NONCE], wrapped[_KID + _NONCE :], event_id.bytes)
        except InvalidTag as exc:
            raise PayloadIntegrityError(f"the data key of event {event_id} does not unwrap") from exc

    def open(self, entry: bytes, wrapped: bytes, event_id: UUID) -> bytes:
        """The payload sealed in `entry`; `PayloadIntegrityError` when anything does not fit."""
        data_key = self._data_key(wrapped, event_id)
        try:
            return AESGCM(data_key).decrypt(entry[:_NONCE], entry[_NONCE:], event_id.bytes)
        except InvalidTag as exc:
            raise PayloadIntegrityError(f"the archived payload of event {event_id} does not decrypt") from exc

    def rewrap(self, wrapped: bytes, event_id: UUID) -> bytes:
        """The same data key wrapped under the current archive key (after a rotation)."""
        data_key = self._data_key(wrapped, event_id)
        nonce = os.urandom(_NONCE)
        return self.kid + nonce + self._aead.encrypt(nonce, data_key, event_id.bytes)
