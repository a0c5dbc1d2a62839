"""The app's Blob and Queue clients, built in one place whichever way the storage account is reached:

- an **account URL** (`EVENTSTORE_BLOB_ACCOUNT_URL` / `AzureWebJobsStorage__blobServiceUri`,
  `EVENTSTORE_QUEUE_ACCOUNT_URL` / `AzureWebJobsStorage__queueServiceUri`) with the app's managed identity
  (`eventstore.identity.credential()`): no key in any setting, the identity holds a data role on the account;
- or a **connection string** (its account key or SAS), as before.

An account URL wins when both are set (a deployment moving to identities keeps AzureWebJobsStorage until the
roles are granted). Every client keeps the timeouts and retries its caller gives (`blob_payloads.client_options`,
the queues' own); the identity's token requests are bounded by the same dependency timeout (`identity`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eventstore import identity
from eventstore.settings import Settings

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueClient


@dataclass(frozen=True)
class StorageAccount:
    """Where a storage service is and how the app signs in to it: `account_url` with the app's identity, or
    `connection_string`. Falsy when neither is set (storage not configured)."""

    account_url: str = ""
    connection_string: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.account_url and self.connection_string:
            # The URL wins (module docstring); the string is dropped so that nothing can use it by mistake.
            object.__setattr__(self, "connection_string", "")

    @classmethod
    def parse(cls, value: str) -> StorageAccount:
        """A setting that holds either: an http(s) URL is an account URL (a connection string never starts
        with a scheme: it is `Name=value;...`)."""
        value = value.strip()
        if value.lower().startswith(("https://", "http://")):
            return cls(account_url=value)
        return cls(connection_string=value)

    @classmethod
    def blobs(cls, settings: Settings) -> StorageAccount:
        """The app's Blob account (large payloads, cold segments)."""
        return cls(settings.blob_account_url.strip(), settings.blob_connection_string)

    @classmethod
    def queues(cls, settings: Settings) -> StorageAccount:
        """The app's own queues' account (replays, the ingest queues' poison queues)."""
        return cls(settings.queue_account_url.strip(), settings.queue_connection_string)

    def __bool__(self) -> bool:
        return bool(self.account_url or self.connection_string)

    @property
    def uses_identity(self) -> bool:
        return bool(self.account_url)

    def describe(self) -> str:
        """Where it is, without secrets (for logs and errors)."""
        if self.account_url:
            return f"{self.account_url} (managed identity)"
        return "a connection string" if self.connection_string else "no storage account"

    def blob_service(self, *, timeout: float, **options: Any) -> BlobServiceClient:
        """A `BlobServiceClient` with `options`; `timeout` bounds the identity's token requests.
        ValueError when the account is not configured or its connection string is malformed."""
        from azure.storage.blob import BlobServiceClient

        if self.account_url:
            return BlobServiceClient(self.account_url, credential=identity.credential(timeout), **options)
        return BlobServiceClient.from_connection_string(self._connection_string("Blob"), **options)

    def queue(self, name: str, *, timeout: float, **options: Any) -> QueueClient:
        """A `QueueClient` of queue `name` with `options` (as `blob_service`)."""
        from azure.storage.queue import QueueClient

        if self.account_url:
            return QueueClient(self.account_url, name, credential=identity.credential(timeout), **options)
        return QueueClient.from_connection_string(self._connection_string("Queue"), name, **options)

    def _connection_string(self, service: str) -> str:
        if not self.connection_string:
            raise ValueError(f"no {service} storage is configured: set its account URL or AzureWebJobsStorage")
        return self.connection_string


__all__ = ["StorageAccount"]
