"""The three ways an alert leaves the app: PagerDuty Events API v2, a Slack incoming webhook, and email.

Each channel delivers one notification or raises one of two errors, so the caller (the outbox sender)
knows what to do with it:

- `ChannelUnavailable`: the service is down, slow, or asked us to wait (429, 5xx, a dropped connection,
  an SMTP 4xx), and our own retries ran out. Try again later; `retry_after` says when, if it said.
- `ChannelRefused`: the service answered that this will never work (a wrong routing key, a revoked
  webhook, a mailbox that does not exist, STARTTLS not offered). Retrying cannot help; a person must.

The HTTP channels retry with tenacity under one `RetryPolicy`, honouring Retry-After, and give up within
the policy's `budget` of seconds (plus one request `timeout`). The clients' own retry loops are switched
off: PagerDuty's retries 429 forever and Slack's sleeps past Retry-After, and neither would stop in time.
Email is sent once: a failure in DATA may already have delivered it, so retrying is the caller's choice.
"""

from __future__ import annotations

import logging
import math
import random
import smtplib
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parsedate_to_datetime
from http.client import HTTPException
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.error import URLError
from urllib.parse import urlsplit

import pagerduty
from slack_sdk.webhook import WebhookClient
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_before_delay

from eventstore.errors import EventStoreError

T = TypeVar("T")
log = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ChannelError(EventStoreError):
    """A notification that did not go out; `channel` is "pagerduty", "slack" or "email"."""

    def __init__(self, channel: str, message: str) -> None:
        super().__init__(f"{channel}: {message}")
        self.channel = channel


class ChannelRefused(ChannelError):
    """The service refused the notification for good (`status`: its HTTP or SMTP code, when it gave one)."""

    def __init__(self, channel: str, message: str, *, status: int | None = None) -> None:
        super().__init__(channel, message)
        self.status = status


class ChannelUnavailable(ChannelError):
    """The service could not take the notification now, after our retries; `retry_after` in seconds, if known."""

    def __init__(self, channel: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(channel, message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How hard an HTTP channel tries: at most `attempts` requests, and no wait that would end past `budget`
    seconds after the first request. Waits grow from `initial_wait` to `max_wait` (with jitter) unless the
    service says how long with Retry-After."""

    attempts: int = 5
    budget: float = 30.0
    initial_wait: float = 0.5
    max_wait: float = 8.0


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """A Retry-After header in seconds: either delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            # slack-sdk keeps some headers as one-element lists
            return str(value[0] if isinstance(value, list) and value else value)
    return None


def _deliver(channel: str, policy: RetryPolicy, attempt: Callable[[], T]) -> T:
    """Run `attempt` until it succeeds, raises something other than `_Transient`, or the policy is spent."""

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, _Transient) and error.retry_after is not None:
            return error.retry_after
        # doubling, capped, with jitter in proportion (tenacity's own jitter is absolute: up to 1 s by default)
        ceiling = min(policy.max_wait, policy.initial_wait * 2 ** (state.attempt_number - 1))
        return random.uniform(ceiling / 2, ceiling)

    retrying = Retrying(
        retry=retry_if_exception_type(_Transient),
        # stop_before_delay: give up rather than start a wait that would end past the budget
        stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.budget),
        wait=wait,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except _Transient as error:
        raise ChannelUnavailable(channel, str(error), retry_after=error.retry_after) from error


def _https_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return url
    raise ValueError(f"{what} must be an https:// URL (http:// only for a local stand-in on 127.0.0.1): {url!r}")


class _EventsClient(pagerduty.EventsApiV2Client):
    """The library's client, allowing http:// for a stand-in on this machine (its `url` setter insists on https).

    Its retry loop is made to hand every failure straight back: it retries 429 forever and 5xx with its own
    sleeps, ignoring Retry-After. For a status in `retry`, it returns the response once `attempts >= count`;
    a count below -1 (-1 means forever) is true at once. Network errors are raised after the first attempt.
    """

    _HAND_BACK = -2

    @property
    def url(self) -> str:
        return str(self.__dict__["_local_url"])

    @url.setter
    def url(self, new_base_url: str) -> None:
        self.__dict__["_local_url"] = _https_url(new_base_url, "the PagerDuty Events API URL").rstrip("/")

    def hand_back_failures(self) -> None:
        # 429 is retried forever by default; the library's own table lists the 5xx it retries (500, 502-504)
        self.retry = dict.fromkeys((429, *self.retry), self._HAND_BACK)
        self.max_network_attempts = 0


class PagerDuty:
    """Pages through the PagerDuty Events API v2 (`POST {base_url}/v2/enqueue`); one dedup key per incident."""

    channel = "pagerduty"

    def __init__(
        self,
        routing_key: str,
        base_url: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        if not routing_key:
            raise ValueError("the PagerDuty routing key is empty")
        self.retry_policy = retry
        self._client = _EventsClient(routing_key, base_url=base_url or "https://events.pagerduty.com")
        self._client.timeout = timeout  # type: ignore[assignment]  # declared int, passed on to httpx as is
        self._client.hand_back_failures()

    def trigger(
        self,
        dedup_key: str,
        summary: str,
        source: str,
        severity: str,
        custom_details: dict[str, Any] | None = None,
        links: list[dict[str, str]] | None = None,
    ) -> None:
        """Open (or update) the incident `dedup_key`."""

        def once() -> str:
            return self._client.trigger(
                summary, source, dedup_key=dedup_key, severity=severity,
                custom_details=custom_details or None, links=links or None,
            )  # fmt: skip

        _deliver(self.channel, self.retry_policy, lambda: self._send(once))

    def resolve(self, dedup_key: str) -> None:
        """Resolve the incident `dedup_key` (PagerDuty accepts a resolve for an unknown key, and ignores it)."""
        _deliver(self.channel, self.retry_policy, lambda: self._send(lambda: self._client.resolve(dedup_key)))

    def close(self) -> None:
        """Close the client's connections (it keeps them open between events)."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _send(self, call: Callable[[], str]) -> None:
        try:
            call()
        except pagerduty.HttpError as error:
            response = error.response
            if response is None:
                raise _Transient(f"PagerDuty gave no answer: {error}") from error
            status = response.status_code
            if status == 429 or status >= 500 or 200 <= status < 300:  # 2xx here: an answer we could not read
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                raise _Transient(f"PagerDuty answered {status}: {response.text[:300]}", retry_after) from error
            raise ChannelRefused(self.channel, f"PagerDuty refused the event ({status}): {response.text[:500]}",
                                 status=status) from error  # fmt: skip
        except pagerduty.Error as error:  # no HTTP answer: the library's TransportError, after one attempt
            raise _Transient(f"PagerDuty could not be reached: {error.__cause__ or error}") from error


class Slack:
    """Posts to a Slack incoming webhook (the URL is the secret); Slack takes about one post per second."""

    channel = "slack"

    def __init__(self, webhook_url: str, *, timeout: float = 10.0, retry: RetryPolicy = RetryPolicy()) -> None:
        self.retry_policy = retry
        # retry_handlers=[]: ours honour Retry-After exactly and stop within the budget (slack-sdk's add up to 1 s)
        self._client = WebhookClient(
            _https_url(webhook_url, "the Slack webhook URL"), timeout=max(1, math.ceil(timeout)), retry_handlers=[]
        )

    def post(self, text: str, blocks: Sequence[dict[str, Any]] | None = None) -> None:
        """Post one message; `text` is what notifications show, `blocks` (Block Kit) what the channel shows."""
        _deliver(self.channel, self.retry_policy, lambda: self._post(text, blocks))

    def _post(self, text: str, blocks: Sequence[dict[str, Any]] | None) -> None:
        try:
            response = self._client.send(text=text, blocks=list(blocks) if blocks else None)
        except (URLError, HTTPException, OSError) as error:
            raise _Transient(f"Slack could not be reached: {error}") from error
        status, body = response.status_code, (response.body or "")[:300]
        if status == 200:
            return
        if status == 429 or status >= 500:
            retry_after = retry_after_seconds(_header(response.headers, "retry-after"))
            raise _Transient(f"Slack answered {status}: {body}", retry_after)
        raise ChannelRefused(self.channel, f"Slack refused the post ({status}): {body}", status=status)


class Email:
    """Sends an email over SMTP: STARTTLS first when `starttls`, then a login when a username is given."""

    channel = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if username is not None and password is None:
            raise ValueError("an SMTP username needs a password")
        self.host, self.port, self.sender = host, port, sender
        self.username, self._password = username, password
        self.starttls, self.timeout = starttls, timeout
        self._ssl_context = ssl_context

    def message(self, to: Sequence[str], subject: str, text: str, html: str | None = None) -> EmailMessage:
        """The message `send` sends: multipart/alternative (plain text, then HTML) when there is HTML."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
        return message

    def send(self, to: Sequence[str], subject: str, text: str, html: str | None = None) -> None:
        """Send to every address in `to`. When the server takes some recipients and refuses others, the
        message went out: the refused ones are logged, not raised (a retry would repeat it to the others)."""
        if not to:
            raise ValueError("an email needs at least one recipient")
        message = self.message(to, subject, text, html)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=self._ssl_context or ssl.create_default_context())
                if self.username is not None and self._password is not None:
                    smtp.login(self.username, self._password)
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            detail = _refusals(error.recipients)
            if any(400 <= code < 500 for code in codes):
                raise ChannelUnavailable(self.channel, f"recipients deferred: {detail}") from error
            raise ChannelRefused(self.channel, f"recipients refused: {detail}", status=max(codes)) from error
        except smtplib.SMTPResponseException as error:  # sender refused, DATA refused, AUTH failed, bad greeting
            reply = f"{error.smtp_code} {_text(error.smtp_error)}"
            if 500 <= error.smtp_code < 600:
                raise ChannelRefused(self.channel, f"refused: {reply}", status=error.smtp_code) from error
            raise ChannelUnavailable(self.channel, f"deferred: {reply}") from error
        except smtplib.SMTPNotSupportedError as error:  # STARTTLS or AUTH configured but not offered
            raise ChannelRefused(self.channel, f"{self.host}:{self.port}: {error}") from error
        except ssl.SSLCertVerificationError as error:
            raise ChannelRefused(self.channel, f"{self.host}:{self.port}: certificate not trusted: {error}") from error
        except smtplib.SMTPServerDisconnected as error:
            raise ChannelUnavailable(self.channel, f"{self.host}:{self.port} hung up: {error}") from error
        except smtplib.SMTPException as error:  # e.g. no AUTH mechanism in common: configuration
            raise ChannelRefused(self.channel, f"{self.host}:{self.port}: {error}") from error
        except OSError as error:  # after the SMTP errors: smtplib.SMTPException is an OSError
            raise ChannelUnavailable(self.channel, f"{self.host}:{self.port} could not be reached: {error}") from error
        if refused:
            log.warning("email: %r went out, but %s refused %s", subject, self.host, _refusals(refused))


def _refusals(recipients: Mapping[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address}: {code} {_text(reply)}" for address, (code, reply) in recipients.items())


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
