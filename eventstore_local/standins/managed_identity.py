"""A local managed identity endpoint: a real HTTP server on 127.0.0.1 that answers what App Service and Azure
Functions answer an app with a managed identity, so that the app's `DefaultAzureCredential` gets its tokens here
exactly as it does in Azure.

The protocol (App Service, API 2019-08-01; read from msal's `managed_identity._obtain_token_on_app_service`,
which azure-identity's `ManagedIdentityCredential` uses when IDENTITY_ENDPOINT and IDENTITY_HEADER are set):

- The platform sets `IDENTITY_ENDPOINT` (a URL on the instance) and `IDENTITY_HEADER` (a secret); `environ()`
  gives both for this server.
- `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<resource>` with `X-IDENTITY-HEADER: <secret>`
  (and `Metadata: true`, which App Service ignores). A user-assigned identity is asked for with `client_id`
  (AZURE_CLIENT_ID), `object_id` or `mi_res_id`; without one, the system-assigned identity answers.
- 200 `{"access_token", "expires_on" (epoch seconds, a string), "resource", "token_type": "Bearer",
  "client_id"}`. A refusal is `{"statusCode", "message"}` with its status, which msal turns into its error.

The tokens are JWTs signed HS256 with a key of this run (nobody checks the signature: Azurite's `--oauth basic`
and the local tools read the claims only): `aud` = the resource, `iss` = `https://sts.windows.net/<tenant>/`,
`iat`/`nbf`/`exp`, `oid`/`sub` (the identity's object id), `appid` (its client id), `tid`, and a unique `uti`,
so that every token issued differs from the last.

Not the platform's: `requests(resource)` counts what was asked (a test sees tokens being cached or refreshed);
`fail_next(n, status)` and `fail(status)` answer with an error; `hang()` answers nothing until `release()`
(or `stop()`); `set_audience(resource, aud)` issues tokens for another audience than asked (a token the
resource must refuse); `set_token(resource, token)` answers `token` itself for `resource` (a PostgreSQL role
whose password is that token can then log in as the identity would with Entra authentication).

    with ManagedIdentityStandIn() as identity:
        os.environ.update(identity.environ())
        DefaultAzureCredential().get_token("https://storage.azure.com/.default")
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from eventstore_local.standins.arrivals import Arrivals, Fault
from eventstore_local.standins.http_server import LocalServer, QuietHandler, send_json

ENDPOINT_PATH = "/msi/token"
API_VERSION = "2019-08-01"
DEFAULT_TENANT_ID = "7a0c3f4e-0d1b-4c55-9b0e-5e0a1f2b3c4d"
SYSTEM_PRINCIPAL_ID = "2f6d4c1a-8b3e-4f70-a5d2-0c9e8b7a6f51"
"""The object id of the system-assigned identity."""
SYSTEM_CLIENT_ID = "9d1e2c3b-4a5f-4e6d-8c7b-1a2b3c4d5e6f"
"""The client (application) id of the system-assigned identity."""
SYSTEM = "system"
"""`TokenRequest.identity` of a request that names no user-assigned identity."""


@dataclass(frozen=True)
class TokenRequest:
    """One request that reached the endpoint: what it asked for and what it got (`token` None: refused or
    never answered, `status` 0 for the latter)."""

    resource: str
    identity: str
    """`SYSTEM`, or the `client_id`, `object_id` or `mi_res_id` the request named."""
    status: int
    token: str | None
    at: float


@dataclass(frozen=True)
class _Identity:
    client_id: str
    object_id: str
    resource_id: str


class _Handler(QuietHandler):
    def do_GET(self) -> None:
        self.server.owner._get(self)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims(token: str) -> dict[str, Any]:
    """The claims of a JWT (the signature is not checked: none of the local tools do)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


class ManagedIdentityStandIn(LocalServer):
    """The managed identity endpoint of one app (see the module docstring). `user_assigned` maps the client id
    of each user-assigned identity to its object id; `lifetime` is how long each token lasts (App Service's
    last 24 hours; msal refreshes tokens of 2 hours or more at half their life)."""

    handler = _Handler
    thread_name = "managed-identity-stand-in"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tenant_id: str = DEFAULT_TENANT_ID,
        user_assigned: dict[str, str] | None = None,
        lifetime: int = 24 * 3600,
    ) -> None:
        super().__init__(host, port)
        self.tenant_id = tenant_id
        self.lifetime = lifetime
        self.identity_header = secrets.token_urlsafe(24)
        self._signing_key = secrets.token_bytes(32)
        self._system = _Identity(SYSTEM_CLIENT_ID, SYSTEM_PRINCIPAL_ID, "/subscriptions/local/system-assigned")
        self._user_assigned = [
            _Identity(client, principal, f"/subscriptions/local/userAssignedIdentities/{client}")
            for client, principal in (user_assigned or {}).items()
        ]
        self._arrivals = Arrivals[TokenRequest, Fault]("token requests")
        self._audiences: dict[str, str] = {}  # these four under `self._arrivals.changed` too
        self._fixed: dict[str, str] = {}
        self._failing: Fault | None = None
        self._hanging = False
        self._stopping = False
        self._released = threading.Event()

    # -- where it is -------------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}{ENDPOINT_PATH}"

    @property
    def user_assigned(self) -> dict[str, str]:
        """The user-assigned identities it answers for: client id -> object id."""
        return {i.client_id: i.object_id for i in self._user_assigned}

    def environ(self) -> dict[str, str]:
        """What the platform sets for an app with a managed identity: azure-identity reads these two."""
        return {"IDENTITY_ENDPOINT": self.endpoint, "IDENTITY_HEADER": self.identity_header}

    # -- what it was asked -------------------------------------------------------------------------------

    @property
    def log(self) -> list[TokenRequest]:
        """Every request that reached the endpoint, in order."""
        return self._arrivals.items

    def requests(self, resource: str | None = None) -> int:
        """How many requests asked for a token for `resource` (for any resource when None), answered or not."""
        return sum(1 for r in self._arrivals.items if resource is None or r.resource == resource)

    def issued(self, resource: str | None = None) -> list[str]:
        """The tokens answered for `resource` (for any when None), in order."""
        return [r.token for r in self._arrivals.items if r.token and (resource is None or r.resource == resource)]

    def clear(self) -> None:
        """Forget the requests (the failures and settings stay)."""
        self._arrivals.clear()

    # -- what it answers ---------------------------------------------------------------------------------

    def set_audience(self, resource: str, audience: str | None) -> None:
        """Tokens asked for `resource` carry `audience` as their `aud` (None: the resource again, as in Azure)."""
        with self._arrivals.changed:
            if audience is None:
                self._audiences.pop(resource, None)
            else:
                self._audiences[resource] = audience

    def set_token(self, resource: str, token: str | None) -> None:
        """Answer `token` itself to every request for `resource` (None: issue a new JWT again)."""
        with self._arrivals.changed:
            if token is None:
                self._fixed.pop(resource, None)
            else:
                self._fixed[resource] = token

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next `n` requests get `status` and no token; `n=0` clears the failures still queued."""
        self._arrivals.fail_next(n, Fault.of(status))

    def fail(self, status: int = 500) -> None:
        """Every request gets `status` and no token until `recover()`."""
        with self._arrivals.changed:
            self._failing = Fault.of(status)

    def hang(self) -> None:
        """Requests get no answer at all (the connection stays open) until `release()` or `stop()`."""
        with self._arrivals.changed:
            self._hanging = True
            self._released.clear()

    def release(self) -> None:
        """End `hang()`: the requests held are answered (with a token, unless told to fail) and the next ones too."""
        with self._arrivals.changed:
            self._hanging = False
            self._released.set()

    def recover(self) -> None:
        """Undo `fail()`, `fail_next()` and `hang()`."""
        self.fail_next(0)
        with self._arrivals.changed:
            self._failing = None
        self.release()

    def start(self) -> Self:
        self._stopping = False
        return super().start()

    def stopping(self) -> None:
        self._stopping = True
        self._released.set()

    def token_for(self, resource: str, identity: str = SYSTEM) -> str:
        """A new token for `resource` as this endpoint issues it (for a test that needs one without asking)."""
        return self._jwt(resource, self._identity(identity) or self._system, time.time())

    # -- the protocol ------------------------------------------------------------------------------------

    def _get(self, handler: _Handler) -> None:
        url = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        resource = query.get("resource", "")
        asked = next((query[k] for k in ("client_id", "object_id", "mi_res_id") if query.get(k)), SYSTEM)
        now = time.time()
        with self._arrivals.changed:
            hanging = self._hanging
        if hanging:
            self._released.wait()
            if self._stopping:  # stopped while held: the client sees the connection close
                self._arrivals.accept(TokenRequest(resource, asked, 0, None, now))
                handler.close_connection = True
                return
        status, document = self._answer(handler, url.path, query, resource, asked, now)
        token = document.get("access_token") if status == 200 else None
        self._arrivals.accept(TokenRequest(resource, asked, status, token, now))
        self._arrivals.answered(status)
        send_json(handler, status, document)

    def _answer(
        self, handler: _Handler, path: str, query: dict[str, str], resource: str, asked: str, now: float
    ) -> tuple[int, dict[str, Any]]:
        if path != ENDPOINT_PATH:
            return _refusal(404, f"no such endpoint: {path}")
        if handler.headers.get("X-IDENTITY-HEADER") != self.identity_header:
            return _refusal(401, "the X-IDENTITY-HEADER is missing or wrong")
        if query.get("api-version") != API_VERSION:
            return _refusal(400, f"api-version {query.get('api-version')!r} is not supported; use {API_VERSION}")
        if not resource:
            return _refusal(400, "the resource parameter is required")
        identity = self._identity(asked)
        if identity is None:
            return _refusal(400, f"no managed identity {asked} is assigned to this app")
        fault = self._arrivals.next_fault()
        with self._arrivals.changed:
            fault = fault or self._failing
            fixed = self._fixed.get(resource)
        if fault is not None:
            return _refusal(fault.status, f"the stand-in was told to answer {fault.status}")
        token = fixed if fixed is not None else self._jwt(resource, identity, now)
        return 200, {
            "access_token": token,
            "expires_on": str(int(now) + self.lifetime),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": identity.client_id,
        }

    def _identity(self, asked: str) -> _Identity | None:
        if asked == SYSTEM:
            return self._system
        for identity in self._user_assigned:
            if asked in (identity.client_id, identity.object_id, identity.resource_id):
                return identity
        return None

    def _jwt(self, resource: str, identity: _Identity, now: float) -> str:
        with self._arrivals.changed:
            audience = self._audiences.get(resource, resource)
        issued = int(now)
        header = {"typ": "JWT", "alg": "HS256"}
        body = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": issued,
            "nbf": issued - 300,  # as Entra: a little clock skew between the issuer and the resource is harmless
            "exp": issued + self.lifetime,
            "oid": identity.object_id,
            "sub": identity.object_id,
            "tid": self.tenant_id,
            "appid": identity.client_id,
            "appidacr": "2",
            "idtyp": "app",
            "xms_mirid": identity.resource_id,
            "uti": _b64(uuid.uuid4().bytes),
            "ver": "1.0",
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}"
        signature = hmac.new(self._signing_key, signing_input.encode("ascii"), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"


def _refusal(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"statusCode": status, "message": message}


__all__ = ["API_VERSION", "ENDPOINT_PATH", "SYSTEM", "ManagedIdentityStandIn", "TokenRequest", "claims"]
