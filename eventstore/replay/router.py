"""The engine's router, as a replay sees it: where a tenant's replays go, and one send per replay.

A router either takes a replay (`send` returns) or says why not, in the two kinds the replay job acts on:

- `RouterUnavailable`: no answer, a timeout, 408, 429, 5xx. Retried with backoff (the router's own
  `Retry-After` when it gave one).
- `RouterRefused`: the router answered, and retrying the same request cannot help until someone changes
  something (a missing queue, a rejected secret, another 4xx, a redirect, a message too large for a queue).

Neither client retries on its own: the replay job owns the retries and their backoff, and a client that
also retried would multiply the waits and hide the router's answers from the job.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Protocol

import requests

from eventstore.errors import RouterNotConfigured, RouterRefused, RouterUnavailable
from eventstore.identity import IdentityUnavailable
from eventstore.replay_wire import ReplayDelivery, http_headers, queue_text
from eventstore.settings import RouterSettings, Settings
from eventstore.storage_clients import StorageAccount

if TYPE_CHECKING:
    from azure.core.exceptions import HttpResponseError
    from azure.storage.queue import QueueClient

MAX_QUEUE_TEXT = 64 * 1024
"""Characters of text a Storage queue message may hold (Azure's limit, which Azurite enforces too: 413)."""

_EXCERPT = 500
"""Characters of a refusal's body kept in the error: enough for a problem+json, not a whole page."""


def router_settings(settings: Settings, tenant_id: str) -> RouterSettings:
    """The tenant's own router, else the deployment's default; `RouterNotConfigured` when neither is set (a
    replay must never guess where a tenant's messages go)."""
    router = settings.replay_routers.get(tenant_id) or settings.replay_router
    if router is None:
        raise RouterNotConfigured(tenant_id)
    return router


class Router(Protocol):
    """Where one tenant's replays are sent."""

    target: str
    """`RouterSettings.describe()`: recorded in the audit stream, so it never holds a secret."""

    def send(self, delivery: ReplayDelivery) -> None:
        """Hand the replay to the router, or raise `RouterUnavailable` or `RouterRefused`."""
        ...

    def close(self) -> None: ...


def open_router(settings: Settings, tenant_id: str) -> Router:
    """The router for `tenant_id`'s replays, ready to send (close it when done)."""
    router = router_settings(settings, tenant_id)
    if router.url is not None:
        return HttpRouter(router)
    # The engine's queue is storage like Blob: it gets the same bound as every other storage call.
    return QueueRouter(
        router, default_connection=StorageAccount.queues(settings), timeout=settings.dependency_timeout_seconds
    )


class QueueRouter:
    """The engine's inbound Azure Storage queue: one message per replay, in the `replay_wire` format.

    The router's `connection` is a connection string, or the queue service URL of the engine's account
    (`https://<account>.queue.core.windows.net`), reached with the app's managed identity (which then needs
    Storage Queue Data Message Sender there). Without one, the app's own queue account: `default_connection`
    (its account URL with the identity, else AzureWebJobsStorage).

    The queue is never created here: a router that names a queue nobody reads would take every replay and
    deliver none, so a missing queue is refused until it exists."""

    def __init__(
        self, router: RouterSettings, *, default_connection: StorageAccount | str = "", timeout: float = 4.0
    ) -> None:
        if router.queue is None:
            raise ValueError("QueueRouter needs a router that names a queue")
        self.target = router.describe()
        self.queue = router.queue
        if router.connection is not None:
            account = StorageAccount.parse(router.connection.get_secret_value())
        elif isinstance(default_connection, StorageAccount):
            account = default_connection
        else:
            account = StorageAccount(connection_string=default_connection)
        if not account:
            raise RouterRefused(
                self.target,
                "no storage connection: set the router's connection, or the app's queue account "
                "(AzureWebJobsStorage__queueServiceUri or AzureWebJobsStorage)",
            )
        self.account = account
        try:
            self._client: QueueClient = account.queue(
                router.queue, timeout=timeout, retry_total=0, connection_timeout=timeout, read_timeout=timeout
            )
        except ValueError:
            # `from None`: a connection string holds the account key, and must not reach a log in a cause.
            what = "account URL" if account.uses_identity else "connection string"
            raise RouterRefused(self.target, f"the storage {what} is not valid") from None

    def send(self, delivery: ReplayDelivery) -> None:
        from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

        text = queue_text(delivery)
        if len(text) > MAX_QUEUE_TEXT:
            # Checked here rather than left to the service's 413, so the job can say what to do about it.
            raise RouterRefused(
                self.target,
                f"the message ({len(delivery.body)} bytes stored) is too large for a Storage queue: "
                f"{len(text)} characters once encoded, at most {MAX_QUEUE_TEXT}; an HTTP router takes any size",
            )
        try:
            self._client.send_message(text)
        except IdentityUnavailable as exc:  # no token: nothing reached the queue, so a retry may get one
            raise RouterUnavailable(self.target, _one_line(str(exc))) from exc
        except ResourceNotFoundError as exc:
            raise RouterRefused(self.target, f"queue {self.queue} does not exist", status=exc.status_code) from exc
        except HttpResponseError as exc:
            raise _storage_failure(self.target, exc) from exc
        except AzureError as exc:  # no connection, a timeout: nothing was answered
            raise RouterUnavailable(self.target, _one_line(f"{type(exc).__name__}: {exc}")) from exc

    def close(self) -> None:
        self._client.close()


def _storage_failure(target: str, exc: HttpResponseError) -> RouterUnavailable | RouterRefused:
    status = exc.status_code
    code = getattr(exc, "error_code", None)  # set by the storage SDK: an enum member or the service's text
    code = getattr(code, "value", code)
    message = exc.message or str(exc)
    reason = _one_line(f"{status} {code}: {message.splitlines()[0] if message else ''}")
    if status is None or _is_transient(status):
        headers = getattr(exc.response, "headers", None) or {}
        return RouterUnavailable(target, reason, retry_after=retry_after_seconds(headers.get("Retry-After")))
    return RouterRefused(target, reason, status=status)  # 403: a wrong key or SAS; 400: a bad request


class HttpRouter:
    """An HTTP endpoint of the engine: the stored bytes POSTed with their content type, the marks as
    `Eventstore-*` headers and the router's secret in its own header."""

    def __init__(self, router: RouterSettings) -> None:
        if router.url is None or router.secret is None:
            raise ValueError("HttpRouter needs a router with a url and a secret")
        self.target = router.describe()
        self._url = router.url
        self._secret = router.secret.get_secret_value()
        self._secret_header = router.secret_header
        self._timeout = router.timeout
        self._session = requests.Session()

    def send(self, delivery: ReplayDelivery) -> None:
        headers = {
            "Content-Type": delivery.content_type,
            **http_headers(delivery),
            self._secret_header: self._secret,
        }
        try:
            # Never follow a redirect: requests would replay the POST as a bodiless GET (and send the secret
            # to wherever the Location points), and a 2xx to that would count as delivered.
            answer = self._session.post(
                self._url, data=delivery.body, headers=headers, timeout=self._timeout, allow_redirects=False
            )
        except (requests.exceptions.InvalidHeader, UnicodeEncodeError):
            # requests quotes an unsendable header value (the secret, perhaps) in its message: not passed on.
            raise RouterRefused(
                self.target, "the router's secret or the message's content type is not a valid HTTP header value"
            ) from None
        except requests.RequestException as exc:
            raise RouterUnavailable(self.target, self._redact(f"{type(exc).__name__}: {exc}")) from exc
        status = answer.status_code
        if 200 <= status < 300:
            return
        reason = self._redact(f"{status} {answer.reason or ''}: {_excerpt(answer)}")
        if _is_transient(status):
            raise RouterUnavailable(
                self.target, reason, retry_after=retry_after_seconds(answer.headers.get("Retry-After"))
            )
        if 300 <= status < 400:
            location = answer.headers.get("Location", "nowhere")
            reason = self._redact(f"{status}: redirected to {location} (a replay follows no redirect)")
        raise RouterRefused(self.target, reason, status=status)

    def close(self) -> None:
        self._session.close()

    def _redact(self, text: str) -> str:
        """`text` on one line, without the secret: a router may echo the request in an error page."""
        return _one_line(text.replace(self._secret, "***"))


def _excerpt(answer: requests.Response) -> str:
    """The start of the body as text, decoded from its first bytes only (`answer.text` would first guess the
    charset of the whole body)."""
    head = answer.content[: 4 * _EXCERPT]
    try:
        text = head.decode(answer.encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        text = head.decode("utf-8", errors="replace")
    return text[:_EXCERPT]


def _is_transient(status: int) -> bool:
    """Whether an answer means "not now" rather than "no": a timeout, throttling, or the server's fault."""
    return status in (408, 429) or status >= 500


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
    if moment.tzinfo is None:  # an HTTP date is GMT; a date without a zone is read as such
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
