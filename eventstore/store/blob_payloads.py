"""Large payloads in the tenant's Blob container, named by their SHA-256, written before the row.

Content addressing makes a write idempotent (the same bytes get the same name) and a read verifiable
(the name is the hash the row also keeps). A blob whose row never committed (a conflict after the
upload) is harmless: it is only ever reached through a row.

Every call is bounded (docs/reliability.md): the SDK's defaults (20 s to connect, 60 s per read, retries
15 s and more apart) made an outage answer after 85 s. Here a connection gets half the dependency timeout,
each socket read the whole of it, and a failed request is retried once after half a second, so storage
that refuses connections answers 503 within a second and storage that hangs within the timeout. Large
uploads are unaffected while storage is up: the read timeout applies to each socket operation, and
uploads over `_SINGLE_PUT` go as blocks, each answered on its own.
"""

from __future__ import annotations

import contextlib
import hashlib
from threading import Lock
from typing import TYPE_CHECKING, Any

from eventstore.errors import PayloadIntegrityError, PayloadMissing, StoreUnavailable

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

_RETRY_PAUSE = 0.5
_SINGLE_PUT = 8 * 1024 * 1024  # larger payloads are uploaded in blocks of `_BLOCK` (the SDK's default)
_BLOCK = 4 * 1024 * 1024


def client_options(timeout: float) -> dict[str, Any]:
    """Keyword arguments for `BlobServiceClient` that bound every call by `timeout` seconds (see above)."""
    from azure.storage.blob import LinearRetry

    class QuickRetry(LinearRetry):
        """One retry, half a second later: the SDK's LinearRetry only takes whole seconds."""

        def get_backoff_time(self, settings: dict[str, Any]) -> float:
            return _RETRY_PAUSE

    # A read that timed out is not retried: the server may be hung, and a second wait would double the bound.
    retry = QuickRetry(retry_total=1, retry_connect=1, retry_read=0, retry_status=1)
    return {
        "connection_timeout": max(1.0, timeout / 2),
        "read_timeout": timeout,
        "retry_policy": retry,
        "max_single_put_size": _SINGLE_PUT,
        "max_block_size": _BLOCK,
    }


class BlobPayloads:
    """Puts and gets payloads in Blob storage; one client per process, containers created on first use."""

    def __init__(self, connection_string: str, *, timeout: float = 4.0) -> None:
        from azure.storage.blob import BlobServiceClient

        self._service: BlobServiceClient = BlobServiceClient.from_connection_string(
            connection_string, **client_options(timeout)
        )
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
        """The payload behind `blob_ref`, after checking it still hashes to `digest`.

        `PayloadMissing` when the blob is gone (permanent: retrying cannot bring it back),
        `StoreUnavailable` when storage does not answer."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        container, _, name = blob_ref.partition("/")
        try:
            data = self._service.get_blob_client(container, name).download_blob().readall()
        except ResourceNotFoundError as exc:
            raise PayloadMissing(blob_ref) from exc
        except AzureError as exc:
            raise StoreUnavailable(f"payload storage unavailable: {exc}") from exc
        verify(data, digest, blob_ref)
        return data

    def exists(self, blob_ref: str) -> bool:
        """Whether the blob behind `blob_ref` is there (one HEAD request); `StoreUnavailable` when storage
        does not answer."""
        from azure.core.exceptions import AzureError

        container, _, name = blob_ref.partition("/")
        try:
            return bool(self._service.get_blob_client(container, name).exists())
        except AzureError as exc:
            raise StoreUnavailable(f"payload storage unavailable: {exc}") from exc

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


__all__ = ["BlobPayloads", "PayloadIntegrityError", "PayloadMissing", "client_options", "verify"]
