"""The app's own identity in Azure: one credential for the whole process, and the token it logs in to
PostgreSQL with when `EVENTSTORE_DATABASE_AUTH=entra`.

In Azure the Functions host sets IDENTITY_ENDPOINT and IDENTITY_HEADER, and `DefaultAzureCredential` asks that
endpoint for a token per resource (the App Service managed identity protocol); AZURE_CLIENT_ID picks a
user-assigned identity (DefaultAzureCredential reads it itself). On a developer's machine the same chain falls
through to `az login` / `azd auth login`. `AZURE_TOKEN_CREDENTIALS=prod` keeps the chain to what Azure has
(environment, workload identity, managed identity). The interactive and Windows-desktop credentials (browser,
broker, shared token cache) are left out: a Functions worker has nobody to sign in, and a token of whoever
signed in to that desktop is not the app's.

Caching and refresh. azure-identity's ManagedIdentityCredential keeps its tokens in MSAL's in-memory cache
(azure-identity TOKEN_CACHING.md: in-memory caching is supported by ManagedIdentityCredential, and by
DefaultAzureCredential when the credential it settled on supports it); MSAL treats a token within 5 minutes of
its expiry as expired and refreshes one of 2 hours or more (App Service's last 24 hours) at half its life,
keeping the old one should the refresh fail (msal `ManagedIdentityClient.acquire_token_for_client`). The
developer credentials (Azure CLI, azd, PowerShell) cache nothing (same table): every token would start a
process. So `AppCredential` keeps each scope's token itself, on the same rule (the token's `refresh_on`,
else 5 minutes before expiry), and keeps using it while a refresh fails and it has not expired. A new
PostgreSQL connection (`database_token`) and a new storage client therefore cost no request while a token lasts.

Bounds. The identity endpoint is a dependency like PostgreSQL and Blob storage: its requests get half the
dependency timeout to connect and the whole of it per socket read, and are retried once, at once, only when
the connection was refused (a read that timed out is not retried: the bound would double). A failure is held
for `FAILURE_HOLD` seconds, so that a storage client's own retry does not wait for the endpoint a second time.
A credential that cannot get a token raises `IdentityUnavailable`: a `StoreUnavailable` (503 with Retry-After
upstream), and also an azure-core `ClientAuthenticationError`, so that the storage clients' callers, which
turn an `AzureError` into their own unavailability, see it as storage that cannot be reached.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from azure.core.credentials import AccessToken, AccessTokenInfo, SupportsTokenInfo, TokenRequestOptions
from azure.core.exceptions import ClientAuthenticationError

from eventstore.errors import StoreUnavailable

if TYPE_CHECKING:
    from azure.identity import DefaultAzureCredential

log = logging.getLogger(__name__)

DATABASE_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
"""Azure Database for PostgreSQL's Entra scope: a token for it is the password of the identity's database login."""
STORAGE_SCOPE = "https://storage.azure.com/.default"
"""Azure Storage's scope (what the storage SDKs ask for)."""
DEFAULT_TIMEOUT = 4.0
"""`Settings.dependency_timeout_seconds`' default, for callers without settings."""
EXPIRY_MARGIN = 300.0
"""A token this close to its expiry is fetched again (MSAL's and azure-core's margin alike)."""
FAILURE_HOLD = 2.0
"""Seconds a failed token request is answered from memory (the same error) before the endpoint is asked again."""
_MESSAGE_CAP = 600


class IdentityUnavailable(StoreUnavailable, ClientAuthenticationError):
    """The app's identity got no token for a scope: its endpoint down, slow, refusing, or answering nothing
    usable. The message names the scope and, in one line, what the credential said."""

    def __init__(self, scope: str, detail: str) -> None:
        super().__init__(f"the app's identity got no token for {scope}: {detail}")
        self.scope = scope
        self.detail = detail


class AppCredential:
    """`DefaultAzureCredential` (or any token credential) behind a cache of one token per scope, whose failures
    are `IdentityUnavailable` (see the module docstring). A `TokenCredential` for the Azure SDK clients."""

    def __init__(self, inner: SupportsTokenInfo, *, clock: Callable[[], float] = time.time) -> None:
        self._inner = inner
        self._clock = clock
        self._lock = threading.Lock()
        self._locks: dict[tuple[str, ...], threading.Lock] = {}
        self._tokens: dict[tuple[str, ...], AccessTokenInfo] = {}
        self._failures: dict[tuple[str, ...], tuple[float, IdentityUnavailable]] = {}

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        options: TokenRequestOptions = {"enable_cae": enable_cae}
        if claims:
            options["claims"] = claims
        if tenant_id:
            options["tenant_id"] = tenant_id
        info = self.get_token_info(*scopes, options=options)
        return AccessToken(info.token, info.expires_on)

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        options = options or {}
        key = (*scopes, options.get("tenant_id") or "")
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        # One request per scope at a time: the instances' first requests after a start, or after a token
        # came due, all wait for the one that asks, and find its token.
        with lock:
            now = self._clock()
            cached = self._tokens.get(key)
            # A claims challenge (a resource that revoked the token) always asks again.
            if cached is not None and not options.get("claims") and not _due(cached, now):
                return cached
            held = self._failures.get(key)
            if held is not None and now < held[0]:
                if cached is not None and now < cached.expires_on - 30:
                    return cached
                raise IdentityUnavailable(held[1].scope, held[1].detail)
            try:
                info = self._inner.get_token_info(*scopes, options=options)
            except Exception as exc:
                failure = IdentityUnavailable(" ".join(scopes), _one_line(exc))
                self._failures[key] = (self._clock() + FAILURE_HOLD, failure)
                if cached is not None and now < cached.expires_on - 30:
                    log.warning("the app's identity could not refresh its token (the current one is used): %s", failure)
                    return cached
                log.warning("%s", failure)
                raise failure from exc
            self._failures.pop(key, None)
            self._tokens[key] = info
            return info

    def forget(self) -> None:
        """Drop every cached token and held failure (the inner credential keeps its own cache)."""
        with self._lock:
            self._tokens.clear()
            self._failures.clear()

    def close(self) -> None:
        self._inner.close()


def _due(info: AccessTokenInfo, now: float) -> bool:
    if info.refresh_on and now >= info.refresh_on:
        return True
    return now >= info.expires_on - EXPIRY_MARGIN


def _one_line(exc: BaseException) -> str:
    """What a credential said, on one line. DefaultAzureCredential lists every credential it tried, each on a
    line of its own with a troubleshooting link; when the managed identity was tried, its line is what matters
    (the others only say they are not configured), so it alone is kept."""
    text = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    attempts = [line.strip() for line in text.splitlines() if line.startswith("\t")]
    managed = [line for line in attempts if line.startswith("ManagedIdentityCredential:")]
    if managed:
        others = len(attempts) - 1
        text = managed[0] + (f" ({others} other credentials tried: not available)" if others else "")
    elif attempts:
        text = "; ".join(attempts)
    # azure-identity prefixes the endpoint's own error with this even when the endpoint was found and answered.
    text = re.sub(r"App Service managed identity configuration not found in environment\. (?=Token request)", "", text)
    text = re.sub(r"\s+", " ", re.sub(r"(Visit|To mitigate this issue).*?https://\S+", "", text)).strip()
    return text if len(text) <= _MESSAGE_CAP else text[: _MESSAGE_CAP - 1] + "…"


def default_credential(timeout: float = DEFAULT_TIMEOUT) -> DefaultAzureCredential:
    """A new `DefaultAzureCredential` with this module's options (see the module docstring)."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(
        exclude_interactive_browser_credential=True,
        exclude_broker_credential=True,
        exclude_shared_token_cache_credential=True,
        # The developer credentials run a process (az, azd, pwsh): bounded by their own timeout.
        process_timeout=max(timeout, 10.0),
        # These reach the managed identity's (and the environment credential's) azure-core pipeline.
        connection_timeout=max(1.0, timeout / 2),
        read_timeout=timeout,
        retry_total=1,
        retry_connect=1,
        retry_read=0,
        retry_status=0,
    )


_credentials: dict[float, AppCredential] = {}
_credentials_lock = threading.Lock()


def credential(timeout: float = DEFAULT_TIMEOUT) -> AppCredential:
    """The process's credential (one per timeout: one in practice, as the settings are loaded once). Built on
    first use; a chain that cannot even be built (a wrong AZURE_TOKEN_CREDENTIALS) is `IdentityUnavailable`."""
    with _credentials_lock:
        found = _credentials.get(timeout)
        if found is None:
            try:
                inner = default_credential(timeout)
            except ValueError as exc:
                raise IdentityUnavailable("any scope", _one_line(exc)) from exc
            found = _credentials[timeout] = AppCredential(inner)
        return found


def reset() -> None:
    """Forget the process's credentials (closing them): the next `credential()` reads the environment again.
    For tests, which point the credential at a stand-in of their own."""
    with _credentials_lock:
        for found in _credentials.values():
            found.close()
        _credentials.clear()


def database_token(timeout: float = DEFAULT_TIMEOUT) -> str:
    """A token of the app's identity for Azure Database for PostgreSQL (`DATABASE_SCOPE`), the password of its
    Entra login: cached until it is due for refresh (module docstring), so asking for every new connection
    costs nothing. `IdentityUnavailable` (a `StoreUnavailable`) when none can be had."""
    return credential(timeout).get_token_info(DATABASE_SCOPE).token


__all__ = [
    "DATABASE_SCOPE",
    "STORAGE_SCOPE",
    "AppCredential",
    "IdentityUnavailable",
    "credential",
    "database_token",
    "default_credential",
    "reset",
]
