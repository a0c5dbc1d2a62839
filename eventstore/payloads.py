"""Large payloads in the tenant's Blob container, named by their SHA-256, written before the row.

Content addressing makes a write idempotent (the same bytes get the same name) and a read verifiable
(the name is the hash the row also keeps). A blob whose row never committed (a conflict after the
upload) is harmless: it is only ever reached through a row.
"""

from __future__ import annotations

import contextlib
import hashlib
from threading import Lock
from typing import TYPE_CHECKING

from eventstore.errors import PayloadIntegrityError, StoreUnavailable

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient


class BlobPayloads:
    """Puts and gets payloads in Blob storage; one client per process, containers created on first use."""

    def __init__(self, connection_string: str) -> None:
        from azure.storage.blob import BlobServiceClient

        self._service: BlobServiceClient = BlobServiceClient.from_connection_string(connection_string)
        self._ready: set[str] = set()
        self._lock = Lock()

    def put(self, container: str, payload: bytes, digest: bytes) -> str:
        """Store `payload` (whose SHA-256 is `digest`) and return its reference `<container>/<sha256 hex>`."""
        from azure.core.exceptions import AzureError, ResourceExistsError

        name = digest.hex()
        client = self._service.get_container_client(container)
        try:
            self._ensure_container(container)
            client.upload_blob(name, payload, overwrite=False, metadata={"sha256": name})
        except ResourceExistsError:
            pass  # the same name is the same bytes: an earlier append of this payload wrote it
        except AzureError as exc:
            raise StoreUnavailable(f"payload storage unavailable: {exc}") from exc
        return f"{container}/{name}"

    def get(self, blob_ref: str, digest: bytes) -> bytes:
        """The payload behind `blob_ref`, after checking it still hashes to `digest`."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        container, _, name = blob_ref.partition("/")
        try:
            data = self._service.get_blob_client(container, name).download_blob().readall()
        except ResourceNotFoundError as exc:
            raise PayloadIntegrityError(f"payload {blob_ref} is missing from Blob storage") from exc
        except AzureError as exc:
            raise StoreUnavailable(f"payload storage unavailable: {exc}") from exc
        verify(data, digest, blob_ref)
        return data

    def _ensure_container(self, container: str) -> None:
        from azure.core.exceptions import ResourceExistsError

        if container in self._ready:
            return
        with contextlib.suppress(ResourceExistsError):
            self._service.create_container(container)
        with self._lock:
            self._ready.add(container)


def verify(payload: bytes, digest: bytes, where: str) -> None:
    if hashlib.sha256(payload).digest() != digest:
        raise PayloadIntegrityError(f"payload {where} does not match its recorded SHA-256")


__all__ = ["BlobPayloads", "PayloadIntegrityError", "verify"]
