"""Fixtures of the identity tests: an Azurite that takes Entra tokens over HTTPS (`AzuriteOAuth`), the managed
identity endpoint's stand-in, and the environment a Functions host with a managed identity gives the app, with
the app's settings naming account URLs only (no key anywhere)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eventstore import Settings, identity
from eventstore_local.standins.azurite_oauth import AzuriteOAuth
from eventstore_local.standins.managed_identity import ManagedIdentityStandIn

# What could make DefaultAzureCredential take another identity than the stand-in's (a service principal, a
# workload identity, another managed identity flavour) or read storage keys into the settings.
_FOREIGN = (
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AzureWebJobsStorage",
    "EVENTSTORE_BLOB_CONNECTION_STRING",
    "EVENTSTORE_QUEUE_CONNECTION_STRING",
)
USER_ASSIGNED = {"5b1c0a9e-7d3f-4e2a-b6c8-0f1e2d3c4b5a": "c3d2e1f0-a9b8-4c7d-8e6f-5a4b3c2d1e0f"}
"""One user-assigned identity of the app besides its system-assigned one: client id -> object id."""


@pytest.fixture(scope="session")
def oauth_azurite() -> Iterator[AzuriteOAuth]:
    with AzuriteOAuth() as emulator:
        yield emulator


@pytest.fixture
def managed_identity(oauth_azurite: AzuriteOAuth, monkeypatch: pytest.MonkeyPatch) -> Iterator[ManagedIdentityStandIn]:
    """The stand-in of the app's managed identity endpoint, in the environment as the Functions host sets it;
    the process's credential is built afresh for each test (it reads that environment once)."""
    for name in _FOREIGN:
        monkeypatch.delenv(name, raising=False)
    # What Azure has: environment, workload and managed identity; never a developer's `az login`.
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "prod")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", oauth_azurite.ca_file)
    with ManagedIdentityStandIn(user_assigned=USER_ASSIGNED) as endpoint:
        for name, value in endpoint.environ().items():
            monkeypatch.setenv(name, value)
        identity.reset()
        try:
            yield endpoint
        finally:
            identity.reset()


@pytest.fixture
def identity_settings(settings: Settings, oauth_azurite: AzuriteOAuth) -> Settings:
    """The app's settings with storage reached by account URL alone: no connection string, no key."""
    return settings.model_copy(
        update={
            "blob_account_url": oauth_azurite.blob_endpoint,
            "blob_connection_string": "",
            "queue_account_url": oauth_azurite.queue_endpoint,
            "queue_connection_string": "",
            "dependency_timeout_seconds": 1.0,
        }
    )
