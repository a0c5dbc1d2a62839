"""Where the change feed goes: an Event Grid topic and CloudEvents webhooks, behind one small interface.

A sink takes one batch of slim CloudEvents and either takes it (returns) or says why not, as one of the
`FeedDeliveryError` kinds the publisher acts on:

- `BatchTooLarge` (413): split the batch.
- `EventsRefused` (any other 4xx): the events go to the dead letters and the feed moves on.
- `SinkUnavailable` (5xx, 408, 429, timeouts, no connection): retry with backoff, checkpoint held.
- `SinkMisconfigured` (401, 403, 404, 405, 410, 415, 3xx, a refused handshake): the sink, not the
  events, is wrong.
  Dead-lettering would empty the whole backlog into the dead letters on a rotated key, so the
  checkpoint is held instead, and the feed endpoint shows the error until the sink is fixed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import requests
from azure.core import PipelineClient
from azure.core.credentials import AzureKeyCredential, TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.policies import (
    AzureKeyCredentialPolicy,
    BearerTokenCredentialPolicy,
    DistributedTracingPolicy,
    HeadersPolicy,
    HttpLoggingPolicy,
    NetworkTraceLoggingPolicy,
    ProxyPolicy,
    RequestIdPolicy,
    UserAgentPolicy,
)
from azure.core.rest import HttpRequest, HttpResponse
from azure.eventgrid import EventGridPublisherClient

from eventstore.errors import (
    BatchTooLarge,
    EventsRefused,
    FeedDeliveryError,
    SinkMisconfigured,
    SinkUnavailable,
)
from eventstore.feed import signing

log = logging.getLogger(__name__)
# The SDK passes per-call options (which are the only way to set retries and timeouts for a basic topic)
# into each event's model as well, which logs three warnings per event that mean nothing.
logging.getLogger("azure.eventgrid._legacy._generated._serialization").setLevel(logging.ERROR)

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json; charset=utf-8"
EVENT_GRID_SINK = "eventgrid"
WEBHOOK_SINK_PREFIX = "webhook:"


@dataclass(frozen=True, slots=True)
class Batch:
    """Slim CloudEvents to send in one request, with their JSON (as the Event Grid SDK writes it)."""

    events: list[dict[str, Any]]
    encoded: list[bytes]

    @property
    def body(self) -> bytes:
        # json.dumps' default separators: byte for byte what the SDK sends for the same list.
        return b"[" + b", ".join(self.encoded) + b"]"

    @property
    def size(self) -> int:
        return sum(len(e) for e in self.encoded) + 2 * len(self.encoded)

    def halves(self) -> tuple[Batch, Batch]:
        middle = len(self.events) // 2
        return Batch(self.events[:middle], self.encoded[:middle]), Batch(self.events[middle:], self.encoded[middle:])


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


class Sink(Protocol):
    """One destination of the feed. `name` keys its checkpoint, so it must never change."""

    @property
    def name(self) -> str: ...

    def send(self, batch: Batch) -> None:
        """Deliver the whole batch, or raise a `FeedDeliveryError`."""
        ...

    def close(self) -> None: ...


def failure(sink: str, status: int | None, reason: str, retry_after: float | None = None) -> FeedDeliveryError:
    """The kind of failure an HTTP status means (None: no answer at all)."""
    if status is None or status in (408, 429) or status >= 500:
        return SinkUnavailable(sink, status, reason, retry_after=retry_after)
    if status == 413:
        return BatchTooLarge(sink, status, reason)
    if status in (401, 403, 404, 405, 410, 415) or 300 <= status < 400:
        # Auth, address, method, consent withdrawn, format not understood, or a redirect (a webhook sender
        # must not follow one): the sink is wrong, whatever the events are.
        return SinkMisconfigured(sink, status, reason)
    if 400 <= status < 500:
        return EventsRefused(sink, status, reason)
    # A 1xx/2xx the sink does not count as taken: the outcome is unknown, so send again.
    return SinkUnavailable(sink, status, f"unexpected answer: {reason}")


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _reason(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


EVENT_GRID_API_VERSION = "2018-01-01"
# What azure-eventgrid's EventGridPublisherClient uses for a basic topic (azure/eventgrid/_legacy/_constants.py).
EVENT_GRID_KEY_HEADER = "aeg-sas-key"
EVENT_GRID_SCOPE = "https://eventgrid.azure.net/.default"


def _event_grid_failure(name: str, status: int, text: str, headers: Mapping[str, str]) -> FeedDeliveryError:
    return failure(name, status, _reason(text), retry_after_seconds(headers.get("Retry-After")))


class _Closeable(Protocol):
    def close(self) -> None: ...


class _EventGridTopic:
    """What both Event Grid sinks keep: the topic, the request timeout, the checkpoint's name."""

    _client: _Closeable

    def __init__(self, endpoint: str, timeout: float, name: str) -> None:
        self._name = name
        self.endpoint = endpoint
        self._timeout = timeout

    @property
    def name(self) -> str:
        return self._name

    def close(self) -> None:
        self._client.close()


class EventGridSink(_EventGridTopic):
    """An Event Grid topic, through azure-core's pipeline with the policies `EventGridPublisherClient` uses
    for a basic topic (key or Entra ID auth, request id, user agent, tracing, logging), posting the batch's
    bytes as they are.

    Why not the client itself (`EventGridSdkSink`, kept as `EVENTSTORE_EVENTGRID_CLIENT=sdk`): its `send`
    rebuilds every event through its models and generic serializer, ~200 µs per event, 72 % of a backlog
    drain (docs/benchmarks.md), for bytes the publisher has already written. A test checks that both send
    the same request.
    """

    _client: PipelineClient[HttpRequest, HttpResponse]

    def __init__(
        self,
        endpoint: str,
        credential: AzureKeyCredential | TokenCredential,
        *,
        timeout: float = 10.0,
        name: str = EVENT_GRID_SINK,
    ) -> None:
        super().__init__(endpoint, timeout, name)
        auth: (
            AzureKeyCredentialPolicy[HttpRequest, HttpResponse] | BearerTokenCredentialPolicy[HttpRequest, HttpResponse]
        )
        if isinstance(credential, AzureKeyCredential):
            auth = AzureKeyCredentialPolicy(credential, EVENT_GRID_KEY_HEADER)
        else:
            auth = BearerTokenCredentialPolicy(credential, EVENT_GRID_SCOPE)
        self._client: PipelineClient[HttpRequest, HttpResponse] = PipelineClient(
            endpoint,
            policies=[
                RequestIdPolicy(),
                HeadersPolicy(),
                UserAgentPolicy(sdk_moniker="eventstore-feed"),
                ProxyPolicy(),
                auth,  # no retry policy (retries are the publisher's) and no redirects followed
                NetworkTraceLoggingPolicy(),
                DistributedTracingPolicy(),
                HttpLoggingPolicy(),
            ],
        )

    def send(self, batch: Batch) -> None:
        request = HttpRequest(
            "POST",
            self.endpoint,
            params={"api-version": EVENT_GRID_API_VERSION},
            headers={"Content-Type": BATCH_CONTENT_TYPE},
            content=batch.body,
        )
        try:
            response = self._client.send_request(request, connection_timeout=self._timeout, read_timeout=self._timeout)
            if response.status_code == 200:  # the only success Event Grid (and its SDK) knows
                return
            text = response.content.decode("utf-8", errors="replace")
        except ClientAuthenticationError as exc:  # no token (managed identity missing, role not granted)
            raise SinkMisconfigured(self._name, None, _reason(f"authentication: {exc}")) from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise SinkUnavailable(self._name, None, _reason(str(exc))) from exc
        except AzureError as exc:
            raise SinkUnavailable(self._name, None, _reason(f"{type(exc).__name__}: {exc}")) from exc
        raise _event_grid_failure(self._name, response.status_code, text, response.headers)


class EventGridSdkSink(_EventGridTopic):
    """An Event Grid topic, through the SDK's `EventGridPublisherClient` (slower: see `EventGridSink`)."""

    _client: EventGridPublisherClient

    def __init__(
        self,
        endpoint: str,
        credential: AzureKeyCredential | TokenCredential,
        *,
        timeout: float = 10.0,
        name: str = EVENT_GRID_SINK,
    ) -> None:
        super().__init__(endpoint, timeout, name)
        self._client = EventGridPublisherClient(endpoint, credential)

    def send(self, batch: Batch) -> None:
        try:
            # The SDK's own retry policy is off: retries are the publisher's (tenacity), with the
            # checkpoint held in between. Client-level options are ignored for basic topics, so per call.
            self._client.send(batch.events, retry_total=0, connection_timeout=self._timeout, read_timeout=self._timeout)
        except ClientAuthenticationError as exc:
            if exc.status_code is None:  # no token at all, rather than a 401 from the topic
                raise SinkMisconfigured(self._name, None, _reason(f"authentication: {exc}")) from exc
            headers = getattr(exc.response, "headers", None) or {}
            raise _event_grid_failure(self._name, exc.status_code, exc.message or str(exc), headers) from exc
        except HttpResponseError as exc:
            headers = getattr(exc.response, "headers", None) or {}
            raise _event_grid_failure(self._name, exc.status_code or 0, exc.message or str(exc), headers) from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise SinkUnavailable(self._name, None, _reason(str(exc))) from exc
        except AzureError as exc:
            raise SinkUnavailable(self._name, None, _reason(f"{type(exc).__name__}: {exc}")) from exc


class WebhookSink:
    """A statically registered CloudEvents webhook (CloudEvents "HTTP 1.1 Web Hooks" specification).

    Before the first delivery it asks for consent (validation handshake: `OPTIONS` with
    `WebHook-Request-Origin`, answered by `WebHook-Allowed-Origin` naming us or `*`); every delivery is a
    batched CloudEvents POST signed as Standard Webhooks (see `signing`).
    """

    def __init__(
        self,
        name: str,
        url: str,
        secret: str,
        *,
        origin: str,
        handshake: bool = True,
        timeout: float = 10.0,
    ) -> None:
        self._name = WEBHOOK_SINK_PREFIX + name
        self.url = url
        self.origin = origin
        self._key = signing.key_of(secret)  # ValueError for a whsec_ secret that is not base64
        if len(self._key) < signing.MIN_KEY_BYTES:
            raise ValueError(f"webhook {name}: the secret must give a key of at least {signing.MIN_KEY_BYTES} bytes")
        self._handshake = handshake
        self._consented = not handshake
        self._timeout = timeout
        self._session = requests.Session()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def _ask_consent(self) -> None:
        try:
            answer = self._session.options(
                self.url, headers={"WebHook-Request-Origin": self.origin}, timeout=self._timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise SinkUnavailable(self._name, None, f"validation handshake: {_reason(str(exc))}") from exc
        allowed = [o.strip() for o in answer.headers.get("WebHook-Allowed-Origin", "").split(",") if o.strip()]
        if answer.status_code >= 500 or answer.status_code in (408, 429):
            raise SinkUnavailable(self._name, answer.status_code, "validation handshake failed")
        if not 200 <= answer.status_code < 300 or not ({"*", self.origin} & set(allowed)):
            raise SinkMisconfigured(
                self._name,
                answer.status_code,
                f"validation handshake refused: WebHook-Allowed-Origin {allowed or 'missing'} does not allow "
                f"{self.origin!r}",
            )
        log.info("webhook %s at %s allowed deliveries from %s", self._name, self.url, self.origin)
        self._consented = True

    def send(self, batch: Batch) -> None:
        with self._lock:
            if not self._consented:
                self._ask_consent()
        body = batch.body
        # The same batch gets the same id, so a subscriber can drop a redelivered request whole.
        message_id = "msg_" + hashlib.sha256(body).hexdigest()[:32]
        headers = {
            "Content-Type": BATCH_CONTENT_TYPE,
            "WebHook-Request-Origin": self.origin,
            **signing.signed_headers(self._key, message_id, body),
        }
        try:
            # Never follow a redirect: requests would turn the POST into a bodiless GET, and a 2xx to that
            # would count as delivered (the CloudEvents webhook spec forbids following them, too).
            answer = self._session.post(
                self.url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise SinkUnavailable(self._name, None, _reason(f"{type(exc).__name__}: {exc}")) from exc
        if 200 <= answer.status_code < 300:
            return
        if answer.status_code == 410 and self._handshake:
            self._consented = False  # "gone": ask again before the next delivery
        raise failure(
            self._name,
            answer.status_code,
            _reason(answer.text or answer.reason or ""),
            retry_after_seconds(answer.headers.get("Retry-After")),
        )

    def close(self) -> None:
        self._session.close()
