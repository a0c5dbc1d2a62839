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

The account is reached with the app's managed identity when `EVENTSTORE_BLOB_ACCOUNT_URL` (or
`AzureWebJobsStorage__blobServiceUri`) is set, else with the connection string (`storage_clients`); the same
bounds apply to both, and the identity's token requests get the same timeout (`eventstore.identity`). Storage
that refuses the identity's token (no role on the account, a token for another audience) is unavailable too:
a 503 that names the refusal, as for an account key that stopped working.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import datetime
from threading import Lock
from typing import TYPE_CHECKING, Any

from eventstore.errors import PayloadIntegrityError, PayloadMissing, StoreUnavailable
from eventstore.settings import Settings
from eventstore.storage_clients import StorageAccount

if TYPE_CHECKING:
    from azure.core.exceptions import AzureError
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

    def __init__(self, account: StorageAccount | str, *, timeout: float = 4.0) -> None:
        """`account`: the Blob account, or a connection string of one."""
        self.account = account if isinstance(account, StorageAccount) else StorageAccount(connection_string=account)
        self._service: BlobServiceClient = self.account.blob_service(timeout=timeout, **client_options(timeout))
        self._ready: set[str] = set()
        self._lock = Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobPayloads | None:
        """The app's payload storage: its account URL with the managed identity, else its connection string;
        None when neither is set (large payloads are then refused)."""
        account = StorageAccount.blobs(settings)
        return cls(account, timeout=settings.dependency_timeout_seconds) if account else None

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
            raise self._unavailable("payload storage", exc) from exc
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
            raise self._unavailable("payload storage", exc) from exc
        verify(data, digest, blob_ref)
        return data

    def delete(self, blob_ref: str) -> None:
        """Delete a hot payload's blob (erasure); one already gone is fine."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        container, _, name = blob_ref.partition("/")
        try:
            self._service.get_blob_client(container, name).delete_blob()
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise self._unavailable("payload storage", exc) from exc

    def exists(self, blob_ref: str) -> bool:
        """Whether the blob behind `blob_ref` is there (one HEAD request); `StoreUnavailable` when storage
        does not answer."""
        from azure.core.exceptions import AzureError

        container, _, name = blob_ref.partition("/")
        try:
            return bool(self._service.get_blob_client(container, name).exists())
        except AzureError as exc:
            raise self._unavailable("payload storage", exc) from exc

    # -- cold segments (retention: eventstore/store/cold_payloads.py) -----------------------------------------

    def list_segments(self, container: str) -> list[tuple[str, datetime, int]]:
        """The segments in a tenant's cold container: (name, last modified, bytes); none when it has no container."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            blobs = self._service.get_container_client(container).list_blobs(name_starts_with="segments/")
            return [(b.name, b.last_modified, int(b.size)) for b in blobs]
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise self._unavailable("payload storage", exc) from exc

    def put_segment(self, container: str, name: str, data: bytes, tier: str) -> None:
        """Write a cold segment and read it back to check its SHA-256 before anything relies on it; written in
        the Cool tier (readable, so checkable) and then moved to `tier` when another is asked for."""
        from azure.core.exceptions import AzureError
        from azure.storage.blob import StandardBlobTier

        digest = hashlib.sha256(data).hexdigest()
        client = self._service.get_blob_client(container, name)
        try:
            self._ensure_container(container)
            client.upload_blob(
                data, overwrite=False, metadata={"sha256": digest}, standard_blob_tier=StandardBlobTier.COOL
            )
            written = client.download_blob().readall()
        except AzureError as exc:
            raise self._unavailable("cold storage", exc) from exc
        if hashlib.sha256(written).hexdigest() != digest:
            raise PayloadIntegrityError(f"cold segment {container}/{name} did not read back as written")
        if tier != "Cool":
            try:
                client.set_standard_blob_tier(StandardBlobTier(tier))
            except AzureError as exc:
                raise self._unavailable("cold storage", exc) from exc

    def get_range(self, container: str, name: str, offset: int, length: int) -> bytes | None:
        """`length` bytes of a cold segment from `offset`; None when the segment is in the Archive tier
        (offline until rehydrated: `rehydrate`). `PayloadMissing` when it is gone."""
        from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

        try:
            return self._service.get_blob_client(container, name).download_blob(offset, length).readall()
        except ResourceNotFoundError as exc:
            raise PayloadMissing(f"{container}/{name}") from exc
        except HttpResponseError as exc:
            if getattr(exc, "error_code", None) == "BlobArchived":
                return None
            raise self._unavailable("cold storage", exc) from exc
        except AzureError as exc:
            raise self._unavailable("cold storage", exc) from exc

    def rehydrate(self, container: str, name: str) -> str | None:
        """Start bringing an archived segment back to the Cool tier (standard priority: up to 15 hours), unless
        that has started already; its archive status (`rehydrate-pending-to-cool`), or None once it is back."""
        from azure.core.exceptions import AzureError
        from azure.storage.blob import RehydratePriority, StandardBlobTier

        client = self._service.get_blob_client(container, name)
        try:
            properties = client.get_blob_properties()
            if properties.archive_status is None and properties.blob_tier == "Archive":
                client.set_standard_blob_tier(StandardBlobTier.COOL, rehydrate_priority=RehydratePriority.STANDARD)
                properties = client.get_blob_properties()
        except AzureError as exc:
            raise self._unavailable("cold storage", exc) from exc
        status = properties.archive_status
        return str(status) if status else None

    def segment_tier(self, container: str, name: str) -> str | None:
        """The access tier a cold segment is in (None: gone)."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            return str(self._service.get_blob_client(container, name).get_blob_properties().blob_tier)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise self._unavailable("cold storage", exc) from exc

    def _unavailable(self, what: str, exc: AzureError) -> StoreUnavailable:
        """`exc` as the 503 it is; a refusal of the identity's token says so (its detail from the service)."""
        status = getattr(exc, "status_code", None)
        if self.account.uses_identity and status in (401, 403):
            return StoreUnavailable(
                f"{what} refused the app's identity at {self.account.account_url}: {refusal_detail(exc)}"
            )
        return StoreUnavailable(f"{what} unavailable: {exc}")

    def _ensure_container(self, container: str) -> None:
        from azure.core.exceptions import ResourceExistsError

        if container in self._ready:
            return
        with contextlib.suppress(ResourceExistsError):
            self._service.create_container(container)
        with self._lock:
            self._ready.add(container)


def refusal_detail(exc: AzureError) -> str:
    """A storage refusal on one line: its status, error code and the service's detail (Azure and Azurite send
    `AuthenticationErrorDetail` for a token they refuse, "Invalid token audience." say)."""
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "error_code", None)
    code = getattr(code, "value", code)
    text = getattr(exc, "message", None) or str(exc)
    detail = next(
        (
            line.split(":", 1)[1].strip()
            for line in text.splitlines()
            if line.lower().startswith("authenticationerrordetail:")
        ),
        text.splitlines()[0] if text else "",
    )
    return " ".join(str(p) for p in (status, code) if p) + f": {detail}"


def verify(payload: bytes, digest: bytes, where: str) -> None:
    if hashlib.sha256(payload).digest() != digest:
        raise PayloadIntegrityError(f"payload {where} does not match its recorded SHA-256")


__all__ = ["BlobPayloads", "PayloadIntegrityError", "PayloadMissing", "client_options", "verify"]
