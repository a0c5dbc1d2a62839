"""The app reaches Azure Storage with its managed identity alone: settings that name account URLs and no key,
a real Azurite that takes only what a real account takes (an Entra token over HTTPS, or its key), and the
managed identity endpoint's stand-in issuing the tokens. Large payloads, the replays queue, a router's queue,
and the ingest queues' poison queues (drained and redriven) all go that way; one token serves them all until
it is due; a token the account refuses is a 503 that says why."""

from __future__ import annotations

import base64
import hashlib
import os
from uuid import uuid4

import pytest
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient
from pydantic import SecretStr

from eventstore import EventStore, Settings
from eventstore.alerts.poison_queues import PoisonQueues, drain, redrive
from eventstore.errors import RouterRefused, StoreUnavailable
from eventstore.replay.driver import ReplayQueue
from eventstore.replay.forwarder import ForwardMessage
from eventstore.replay.router import open_router
from eventstore.settings import RouterSettings
from eventstore.store import BlobPayloads
from eventstore_local.standins.azurite import connection_string
from eventstore_local.standins.azurite_oauth import STORAGE_RESOURCE, AzuriteOAuth
from eventstore_local.standins.managed_identity import SYSTEM, ManagedIdentityStandIn, claims
from tests.helpers import random_tenant_id
from tests.replay.test_router import closed_port, delivery, received


def _payload(size: int = 300 * 1024) -> tuple[bytes, bytes]:
    """A payload over the inline limit (256 KiB), and its SHA-256."""
    data = os.urandom(size)
    return data, hashlib.sha256(data).digest()


def _container() -> str:
    return f"identity-{uuid4().hex[:12]}"


def _by_key(azurite: AzuriteOAuth, queue: str) -> QueueClient:
    """The queue as an operator (or the Functions host) sees it, with the account key: never the app's way."""
    return QueueClient.from_connection_string(azurite.connection_string, queue, connection_verify=azurite.ca_file)


# --- Blob ----------------------------------------------------------------------------------------------------


def test_a_large_payload_is_stored_and_read_with_the_identity_alone(
    identity_settings: Settings, managed_identity: ManagedIdentityStandIn, oauth_azurite: AzuriteOAuth
) -> None:
    assert (identity_settings.blob_connection_string, identity_settings.queue_connection_string) == ("", "")
    payloads = BlobPayloads.from_settings(identity_settings)
    assert payloads is not None and payloads.account.uses_identity
    data, digest = _payload()
    ref = payloads.put(_container(), data, digest)
    assert payloads.get(ref, digest) == data
    assert payloads.exists(ref)

    # It is in that account (looked at with the key, as an operator would) ...
    container, name = ref.split("/", 1)
    by_key = BlobServiceClient.from_connection_string(
        oauth_azurite.connection_string, connection_verify=oauth_azurite.ca_file
    )
    assert by_key.get_blob_client(container, name).download_blob().readall() == data
    # ... and it got there with the identity's token for Storage.
    [asked] = managed_identity.log
    assert (asked.resource, asked.identity, asked.status) == (STORAGE_RESOURCE, SYSTEM, 200)
    assert asked.token is not None and claims(asked.token)["aud"] == STORAGE_RESOURCE


def test_without_an_account_url_or_a_connection_string_there_is_no_payload_storage(
    identity_settings: Settings,
) -> None:
    assert BlobPayloads.from_settings(identity_settings.model_copy(update={"blob_account_url": ""})) is None


def test_the_account_url_wins_over_a_connection_string(
    identity_settings: Settings, managed_identity: ManagedIdentityStandIn
) -> None:
    # Both set, as while a deployment moves to identities: the connection string here leads nowhere.
    nowhere = closed_port()
    both = identity_settings.model_copy(update={"blob_connection_string": connection_string(nowhere, nowhere, nowhere)})
    payloads = BlobPayloads.from_settings(both)
    assert payloads is not None
    data, digest = _payload(1024)
    assert payloads.get(payloads.put(_container(), data, digest), digest) == data
    assert managed_identity.requests(STORAGE_RESOURCE) == 1


# --- queues --------------------------------------------------------------------------------------------------


def test_replay_items_go_to_the_replays_queue_with_the_identity(
    identity_settings: Settings, managed_identity: ManagedIdentityStandIn, oauth_azurite: AzuriteOAuth
) -> None:
    name = f"replays-{uuid4().hex[:10]}"
    message = ForwardMessage(tenant_id=random_tenant_id(), job_id=uuid4(), positions=(3, 4))
    queue = ReplayQueue(identity_settings, name)  # creates the queue, as on the first run in a new account
    queue.put(message, 0)
    queue.close()
    with _by_key(oauth_azurite, name) as by_key:
        [got] = by_key.receive_messages(max_messages=32)
    assert ForwardMessage.model_validate_json(base64.b64decode(got.content)) == message
    assert managed_identity.requests(STORAGE_RESOURCE) == 1


def test_a_queue_router_sends_with_the_identity_to_the_apps_queue_account_or_its_own_url(
    identity_settings: Settings, managed_identity: ManagedIdentityStandIn, oauth_azurite: AzuriteOAuth
) -> None:
    engine = f"engine-{uuid4().hex[:10]}"
    tenant = random_tenant_id()
    with _by_key(oauth_azurite, engine) as by_key:
        by_key.create_queue()
        # A router without a connection of its own: the app's queue account (its URL, the identity).
        plain = identity_settings.model_copy(update={"replay_router": RouterSettings(queue=engine)})
        first = delivery(b'{"first": true}')
        router = open_router(plain, tenant)
        router.send(first)
        router.close()
        # A router whose connection is an account URL (the engine's account): the identity as well, whatever
        # the app's own queue account is.
        own = RouterSettings(queue=engine, connection=SecretStr(oauth_azurite.queue_endpoint))
        second = delivery(b'{"second": true}')
        router = open_router(
            identity_settings.model_copy(update={"replay_router": own, "queue_account_url": ""}), tenant
        )
        router.send(second)
        router.close()
        got = received(by_key)
    assert [(marks, body) for marks, body, _ in got] == [(first.marks, first.body), (second.marks, second.body)]
    assert {r.resource for r in managed_identity.log} == {STORAGE_RESOURCE}


def test_poison_queues_are_drained_and_redriven_with_the_identity(
    store: EventStore,
    identity_settings: Settings,
    managed_identity: ManagedIdentityStandIn,
    oauth_azurite: AzuriteOAuth,
) -> None:
    configured = PoisonQueues.from_settings(identity_settings)
    assert configured is not None and configured.account.uses_identity
    assert PoisonQueues.required(identity_settings).account == configured.account  # what a redrive request checks
    # A poison queue of this test's own, read as workflow-messages' (the store's dead letters are the suite's).
    poison = f"m{uuid4().hex[:10]}-poison"
    queues = PoisonQueues(configured.account, 1.0, {poison: "workflow-messages"}, hide_seconds=1)
    body = f'{{"tenantId": "{random_tenant_id()}", "not": "an envelope"}}'.encode()
    with _by_key(oauth_azurite, poison) as by_key:  # the Functions host moves a failed message there
        by_key.create_queue()
        by_key.send_message(base64.b64encode(body).decode())

        result = drain(store, identity_settings, queues, notify=False)
        assert (result.kept, result.errors) == (1, [])
        assert list(by_key.peek_messages(max_messages=32)) == []
    [letter] = store.queue_dead_letters().list(queue=poison)
    assert bytes(letter.body) == body

    redrive(store, queues, letter, "identity test", "sent back with the app's identity")
    with _by_key(oauth_azurite, "workflow-messages") as ingest:
        assert base64.b64encode(body).decode() in [m.content for m in ingest.peek_messages(max_messages=32)]
    assert managed_identity.requests(STORAGE_RESOURCE) == 1


def test_a_redrive_without_any_queue_storage_names_both_ways_to_configure_it(identity_settings: Settings) -> None:
    bare = identity_settings.model_copy(update={"queue_account_url": ""})
    assert PoisonQueues.from_settings(bare) is None
    with pytest.raises(StoreUnavailable, match=r"AzureWebJobsStorage__queueServiceUri.*AzureWebJobsStorage"):
        PoisonQueues.required(bare)


# --- tokens --------------------------------------------------------------------------------------------------


def test_one_token_serves_every_storage_client_of_the_process(
    identity_settings: Settings, managed_identity: ManagedIdentityStandIn
) -> None:
    data, digest = _payload(2048)
    for _ in range(3):  # a new client each time, as each function invocation's store may build one
        payloads = BlobPayloads.from_settings(identity_settings)
        assert payloads is not None
        assert payloads.get(payloads.put(_container(), data, digest), digest) == data
    name = f"replays-{uuid4().hex[:10]}"
    for position in range(1, 4):
        queue = ReplayQueue(identity_settings, name)
        queue.put(ForwardMessage(tenant_id=random_tenant_id(), job_id=uuid4(), positions=(position,)), 0)
        queue.close()
    poison = PoisonQueues.required(identity_settings)
    for _ in range(3):
        with poison.client(name) as client:
            client.get_queue_properties()
    assert managed_identity.requests() == 1
    assert len(set(managed_identity.issued())) == 1


def test_a_token_near_its_expiry_is_not_used(
    identity_settings: Settings, managed_identity: ManagedIdentityStandIn
) -> None:
    # Tokens that last less than the refresh margin (5 minutes) are due as soon as they are issued: each client
    # that needs one gets a new one (from the endpoint), never the one about to expire.
    managed_identity.lifetime = 299
    data, digest = _payload(1024)
    for _ in range(3):
        payloads = BlobPayloads.from_settings(identity_settings)
        assert payloads is not None
        payloads.put(_container(), data, digest)
    assert managed_identity.requests(STORAGE_RESOURCE) >= 3
    assert len(set(managed_identity.issued(STORAGE_RESOURCE))) == managed_identity.requests(STORAGE_RESOURCE)


def test_a_token_the_account_refuses_is_a_503_that_says_why(
    identity_settings: Settings, managed_identity: ManagedIdentityStandIn, oauth_azurite: AzuriteOAuth
) -> None:
    # A token for another audience (as a misconfigured identity endpoint or a token meant for ARM would be).
    managed_identity.set_audience(STORAGE_RESOURCE, "https://management.azure.com")
    payloads = BlobPayloads.from_settings(identity_settings)
    assert payloads is not None
    data, digest = _payload(1024)
    with pytest.raises(StoreUnavailable, match=r"refused the app's identity at https://.*403 .*Invalid token audience"):
        payloads.put(_container(), data, digest)
    [token] = set(managed_identity.issued(STORAGE_RESOURCE))
    assert claims(token)["aud"] == "https://management.azure.com"

    # The engine's queue refuses it too: a refusal the replay job holds on (retrying cannot help), not a retry.
    engine = f"engine-{uuid4().hex[:10]}"
    with _by_key(oauth_azurite, engine) as by_key:
        by_key.create_queue()
        router = open_router(identity_settings.model_copy(update={"replay_router": RouterSettings(queue=engine)}), "t")
        with pytest.raises(RouterRefused, match="AuthenticationFailed"):
            router.send(delivery())
        router.close()
        assert list(by_key.peek_messages()) == []
