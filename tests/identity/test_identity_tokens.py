"""The app's identity itself: the PostgreSQL token (`database_token`) a pool uses as each new connection's
password, what the managed identity endpoint is asked and how often, and every way it can fail — down, an
error, no answer at all — as a 503 (`StoreUnavailable`, with Retry-After over HTTP) that names what failed,
given up on within the dependency timeout rather than hung on."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
import requests

from eventstore import Settings, identity
from eventstore.errors import RouterUnavailable, StoreUnavailable
from eventstore.http.problems import problem_response
from eventstore.identity import DATABASE_SCOPE, AppCredential, IdentityUnavailable
from eventstore.replay.router import open_router
from eventstore.settings import RouterSettings
from eventstore.store import BlobPayloads
from eventstore_local.standins.azurite_oauth import STORAGE_RESOURCE
from eventstore_local.standins.managed_identity import (
    API_VERSION,
    SYSTEM,
    SYSTEM_PRINCIPAL_ID,
    ManagedIdentityStandIn,
    claims,
)
from tests.helpers import run_threads
from tests.replay.test_router import delivery

DATABASE_RESOURCE = "https://ossrdbms-aad.database.windows.net"


def _blob_put(settings: Settings) -> None:
    payloads = BlobPayloads.from_settings(settings)
    assert payloads is not None
    payloads.put("identity-failures", b"x" * 1024, hashlib.sha256(b"x" * 1024).digest())


# --- the PostgreSQL token ------------------------------------------------------------------------------------


def test_the_database_token_is_the_identitys_token_for_postgresql(managed_identity: ManagedIdentityStandIn) -> None:
    token = identity.database_token()
    said = claims(token)
    assert said["aud"] == DATABASE_RESOURCE
    assert said["iss"] == f"https://sts.windows.net/{managed_identity.tenant_id}/"
    assert said["oid"] == SYSTEM_PRINCIPAL_ID and said["exp"] > time.time()
    [asked] = managed_identity.log
    assert (asked.resource, asked.identity, asked.token) == (DATABASE_RESOURCE, SYSTEM, token)


def test_every_new_connection_gets_the_one_cached_token(managed_identity: ManagedIdentityStandIn) -> None:
    tokens: set[str] = set()

    def connect(_: int) -> None:  # as a pool's threads opening connections at once
        for _ in range(10):
            tokens.add(identity.database_token())

    run_threads(8, connect)
    assert len(tokens) == 1
    assert managed_identity.requests(DATABASE_RESOURCE) == 1


def test_a_fixed_token_is_the_password_as_given(managed_identity: ManagedIdentityStandIn) -> None:
    # What a local PostgreSQL role whose password is that token needs.
    managed_identity.set_token(DATABASE_RESOURCE, "local-entra-password-0123")
    assert identity.database_token() == "local-entra-password-0123"


def test_a_user_assigned_identity_is_asked_for_with_azure_client_id(
    managed_identity: ManagedIdentityStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    [(client_id, object_id)] = managed_identity.user_assigned.items()
    monkeypatch.setenv("AZURE_CLIENT_ID", client_id)
    identity.reset()  # the credential reads the environment when it is built
    said = claims(identity.database_token())
    assert (said["appid"], said["oid"]) == (client_id, object_id)
    assert [r.identity for r in managed_identity.log] == [client_id]


def test_a_refresh_that_fails_keeps_the_token_while_it_lasts(managed_identity: ManagedIdentityStandIn) -> None:
    managed_identity.lifetime = 299  # due for refresh as soon as issued (under the 5 minute margin)
    now = [time.time()]
    credential = AppCredential(identity.default_credential(1.0), clock=lambda: now[0])
    first = credential.get_token_info(DATABASE_SCOPE)
    managed_identity.fail(500)
    # Due, asked again, refused: the token still has minutes to live, so it is kept.
    assert credential.get_token_info(DATABASE_SCOPE).token == first.token
    assert managed_identity.requests(DATABASE_RESOURCE) == 2
    # The failure is held: the next connection does not ask the endpoint again at once.
    assert credential.get_token_info(DATABASE_SCOPE).token == first.token
    assert managed_identity.requests(DATABASE_RESOURCE) == 2
    # Once the token is about to expire, nothing is left to fall back on.
    now[0] = first.expires_on - 10
    with pytest.raises(IdentityUnavailable, match=f"no token for {DATABASE_SCOPE}: .*500"):
        credential.get_token_info(DATABASE_SCOPE)
    credential.close()


# --- failures ------------------------------------------------------------------------------------------------


def test_an_identity_endpoint_that_is_down_is_a_503_naming_it(
    identity_settings: Settings, managed_identity: ManagedIdentityStandIn
) -> None:
    managed_identity.stop()
    with pytest.raises(StoreUnavailable) as caught:
        _blob_put(identity_settings)
    assert "payload storage unavailable: the app's identity got no token for https://storage.azure.com" in str(
        caught.value
    )
    assert "ManagedIdentityCredential" in str(caught.value) and "refused" in str(caught.value)

    with pytest.raises(IdentityUnavailable) as refused:
        identity.database_token(identity_settings.dependency_timeout_seconds)
    assert isinstance(refused.value, StoreUnavailable) and DATABASE_SCOPE in str(refused.value)
    answer = problem_response(refused.value)
    assert answer.status_code == 503 and "Retry-After" in answer.headers


def test_an_identity_endpoint_that_answers_an_error_is_a_503_or_a_router_retry(
    identity_settings: Settings, managed_identity: ManagedIdentityStandIn
) -> None:
    managed_identity.fail(500)
    with pytest.raises(StoreUnavailable, match=r"no token for https://storage\.azure\.com/\.default: .*500"):
        _blob_put(identity_settings)
    with pytest.raises(IdentityUnavailable, match="500"):
        identity.database_token(identity_settings.dependency_timeout_seconds)
    # A replay whose router's queue cannot be reached for want of a token is retried later, not held as refused.
    router = open_router(identity_settings.model_copy(update={"replay_router": RouterSettings(queue="engine")}), "t")
    with pytest.raises(RouterUnavailable) as unavailable:
        router.send(delivery())
    router.close()
    assert unavailable.value.reason.startswith("the app's identity got no token for https://storage.azure.com")
    assert {r.status for r in managed_identity.log} == {500}


def test_an_identity_endpoint_that_never_answers_is_given_up_on(
    identity_settings: Settings, managed_identity: ManagedIdentityStandIn
) -> None:
    managed_identity.hang()  # takes the request and answers nothing until released
    failures: list[StoreUnavailable] = []

    def put() -> None:
        try:
            _blob_put(identity_settings)
        except StoreUnavailable as exc:
            failures.append(exc)

    caller = threading.Thread(target=put, daemon=True)
    caller.start()
    # Not a timing assertion: the endpoint answers nobody until released, so the call can only have ended by
    # giving up (its bound is ~2 x 1 s); 60 s is there only so that a regression fails instead of hanging.
    caller.join(timeout=60)
    gave_up = not caller.is_alive()
    managed_identity.release()
    caller.join(timeout=10)
    assert gave_up, "the token request waited for the identity endpoint with no bound"
    [failure] = failures
    assert "the app's identity got no token" in str(failure) and "timed out" in str(failure)


# --- the stand-in ----------------------------------------------------------------------------------------------


def test_the_stand_in_answers_the_app_service_protocol(managed_identity: ManagedIdentityStandIn) -> None:
    endpoint, header = managed_identity.endpoint, managed_identity.identity_header
    query = {"resource": STORAGE_RESOURCE, "api-version": API_VERSION}
    answer = requests.get(endpoint, params=query, headers={"X-IDENTITY-HEADER": header}, timeout=5)
    assert answer.status_code == 200
    document = answer.json()
    assert set(document) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert document["expires_on"].isdigit() and document["token_type"] == "Bearer"  # noqa: S105 (the scheme, not a secret)
    assert claims(document["access_token"])["aud"] == STORAGE_RESOURCE

    refusals = [
        requests.get(endpoint, params=query, headers={"X-IDENTITY-HEADER": "wrong"}, timeout=5),
        requests.get(endpoint, params={**query, "api-version": "2017-09-01"}, headers={"X-IDENTITY-HEADER": header},
                     timeout=5),
        requests.get(endpoint, params={**query, "client_id": "nobody"}, headers={"X-IDENTITY-HEADER": header},
                     timeout=5),
    ]  # fmt: skip
    assert [(r.status_code, r.json()["statusCode"]) for r in refusals] == [(401, 401), (400, 400), (400, 400)]
    assert managed_identity.requests(STORAGE_RESOURCE) == 4
