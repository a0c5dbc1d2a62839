"""The weekly email through Azure Communication Services Email, instead of SMTP, when a deployment has it.

`AcsEmail.send` has `Email.send`'s shape and errors, so the weekly sender treats both alike. It sends with
the SDK's `EmailClient`: `begin_send` (POST /emails:send, 202 and an Operation-Location), then the SDK polls
the operation until it ends, for at most `wait` seconds. Two ways in:

- a connection string (`endpoint=https://...;accesskey=...`): every request signed with HMAC-SHA256 with
  the access key. The SDK keeps only the host of its endpoint and always speaks https to it.
- an endpoint alone: an Entra ID token from `DefaultAzureCredential` (the app's managed identity in Azure,
  which needs a role on the Communication Services resource that allows sending email).

Errors, as the other channels: 429, 5xx and no answer are retried under the `RetryPolicy` (Retry-After
honoured) and then raised as `ChannelUnavailable`; any other 4xx (401 a wrong key or token, 400 a message the
service will not take), an operation that ends Failed or Canceled, and a certificate not trusted are
`ChannelRefused`. An operation still running after `wait` is `ChannelUnavailable`: it may yet go out.

Every attempt at one message carries the same `Operation-Id` (derived from the message), so a retried send,
here or by the next timer run, names the operation the first attempt may already have started instead of
starting another. The SDK's own retry loop is off: it would retry past the policy's budget.
"""

from __future__ import annotations

import json
import logging
import ssl
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from azure.communication.email import EmailClient
from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.polling.base_polling import OperationFailed

from eventstore.alerts.channels import (
    ChannelRefused,
    ChannelUnavailable,
    RetryPolicy,
    _deliver,
    _Transient,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

_OPERATION_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:eventstore:alerts:acs-email")
_ERROR_BODY_CAP = 500
_RETRY = RetryPolicy()


class AcsEmail:
    """Sends an email through Azure Communication Services Email: give `connection_string` (key auth) or
    `endpoint` (Entra ID: `credential`, by default `DefaultAzureCredential`), not both."""

    channel = "email"

    def __init__(
        self,
        sender: str,
        *,
        connection_string: str | None = None,
        endpoint: str | None = None,
        credential: TokenCredential | None = None,
        timeout: float = 30.0,
        wait: float = 60.0,
        poll_interval: float = 2.0,
        retry: RetryPolicy = _RETRY,
        connection_verify: bool | str = True,
    ) -> None:
        if not sender:
            raise ValueError("the ACS email sender address is empty")
        if (connection_string is None) == (endpoint is None):
            raise ValueError("give an ACS connection string or an endpoint, not both or neither")
        self.sender, self.wait, self.retry_policy = sender, wait, retry
        self._credential: TokenCredential | None = None
        # retry_total=0: our policy retries (with a stable Operation-Id) and stops within its budget.
        # polling_interval: the wait between polls when the service sends no Retry-After (the SDK's is 30 s).
        options: dict[str, Any] = {
            "retry_total": 0,
            "connection_timeout": timeout,
            "read_timeout": timeout,
            "connection_verify": connection_verify,
            "polling_interval": poll_interval,
        }
        if connection_string is not None:
            # parse_connection_str raises ValueError naming the expected form, without the key
            self._client = EmailClient.from_connection_string(connection_string, **options)
            self.endpoint = _endpoint_of(connection_string)
        else:
            assert endpoint is not None
            if not endpoint.startswith("https://"):
                # azure-core sends a bearer token over https only, and refuses at the first send
                raise ValueError(f"the ACS email endpoint must be an https:// URL: {endpoint!r}")
            if credential is None:
                # Imported here: azure-identity is heavy, and local runs use a connection string.
                from azure.identity import DefaultAzureCredential

                credential = self._credential = DefaultAzureCredential()
            self._client = EmailClient(endpoint, credential, **options)
            self.endpoint = endpoint.rstrip("/")

    def message(self, to: Sequence[str], subject: str, text: str, html: str | None = None) -> dict[str, Any]:
        """The message `send` sends: both parts when there is HTML (mail clients show the one they can)."""
        content = {"subject": subject, "plainText": text} | ({"html": html} if html is not None else {})
        return {"senderAddress": self.sender, "recipients": {"to": [{"address": a} for a in to]}, "content": content}

    @staticmethod
    def operation_id(message: dict[str, Any]) -> str:
        """The same message, the same operation id: a repeat names the operation the first attempt started."""
        return str(uuid.uuid5(_OPERATION_IDS, json.dumps(message, sort_keys=True, ensure_ascii=False)))

    def send(self, to: Sequence[str], subject: str, text: str, html: str | None = None) -> None:
        """Send to every address in `to`, and return once the service says the operation succeeded."""
        if not to:
            raise ValueError("an email needs at least one recipient")
        message = self.message(to, subject, text, html)
        operation_id = self.operation_id(message)
        _deliver(self.channel, self.retry_policy, lambda: self._send_once(message, operation_id))

    def close(self) -> None:
        """Close the client's connections (and the identity credential's, when this channel made it)."""
        self._client.close()
        if self._credential is not None and hasattr(self._credential, "close"):
            self._credential.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _send_once(self, message: dict[str, Any], operation_id: str) -> None:
        try:
            poller = self._client.begin_send(message, operation_id=operation_id)
            result = poller.result(timeout=self.wait)
            done, status = poller.done(), poller.status()
        except HttpResponseError as error:
            raise self._answered(error, operation_id) from error
        except (ServiceRequestError, ServiceResponseError) as error:
            if _certificate_not_trusted(error):
                raise ChannelRefused(self.channel, f"{self.endpoint}: certificate not trusted: {error}") from error
            raise _Transient(f"ACS email ({self.endpoint}) could not be reached: {error}") from error
        if not done:
            # Accepted and queued: it may still go out. The caller's retry names the same operation.
            raise ChannelUnavailable(
                self.channel, f"operation {operation_id} is still {status} after {self.wait:g} s at {self.endpoint}"
            )
        if (result or {}).get("status") != "Succeeded":  # the poller raises for Failed; this is anything else
            raise ChannelRefused(self.channel, f"operation {operation_id} ended {status}: {result}")
        log.info("email: ACS operation %s succeeded (%s)", operation_id, message["content"]["subject"])

    def _answered(self, error: HttpResponseError, operation_id: str) -> Exception:
        """What an error answer means: the operation failed, the service refused, or it could not take it now."""
        response = error.response
        detail = _error_text(error)
        if isinstance(error.__cause__, OperationFailed):  # the poll answered 200 with Failed or Canceled
            return ChannelRefused(self.channel, f"operation {operation_id} failed: {detail}")
        if response is None:  # no token: DefaultAzureCredential found no identity it could use
            return ChannelRefused(self.channel, f"no credential for {self.endpoint}: {error.message}")
        status = error.status_code or 0
        if status == 429 or status >= 500 or status < 300:  # 2xx here: an answer we could not read
            headers: Mapping[str, str] = getattr(response, "headers", {})
            retry_after = retry_after_seconds(headers.get("Retry-After"))
            return _Transient(f"ACS email answered {status}: {detail}", retry_after)
        return ChannelRefused(self.channel, f"ACS email refused the message ({status}): {detail}", status=status)


def _endpoint_of(connection_string: str) -> str:
    """The connection string's endpoint, for messages (never the key)."""
    for part in connection_string.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == "endpoint":
            return value.strip().rstrip("/")
    return "(no endpoint)"


def _error_text(error: HttpResponseError) -> str:
    """The service's `{"error": {"code", "message"}}`, or the body as it came."""
    response = error.response
    if response is None:
        return str(error.message)
    try:
        body = response.text()
    except Exception:  # a streamed body already read and closed
        return str(error.message)
    try:
        document = json.loads(body)
        inner = document.get("error") or {}
        return f"{inner.get('code', '')}: {inner.get('message', '')}".strip(": ") or body[:_ERROR_BODY_CAP]
    except (ValueError, AttributeError):
        return body[:_ERROR_BODY_CAP]


def _certificate_not_trusted(error: BaseException) -> bool:
    seen: BaseException | None = error
    for _ in range(10):  # azure-core wraps requests', which wraps urllib3's, which wraps ssl's
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__ or (getattr(seen, "inner_exception", None))
    return False
