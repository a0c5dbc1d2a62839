"""HTTP to the event store with bounded retries.

A connection error, a timeout and any 5xx answer (503 with its Retry-After) are retried with backoff, up to
`RetryPolicy.attempts` tries in all; a 4xx answer never is. Retrying a POST is safe here because every event
the client sends carries its own event id: the store answers a repeat with the first result and stores
nothing twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from eventstore.client.errors import ClientError, ProblemAnswer, RequestRefused, ServerError, StoreUnreachable

log = logging.getLogger(__name__)

API_KEY_HEADER = "x-functions-key"
"""Where an Azure Functions function key goes."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the client tries before it raises."""

    attempts: int = 5
    """Tries in all, the first included."""
    max_wait: float = 5.0
    """Longest backoff between two tries (random exponential from `min_wait`)."""
    min_wait: float = 0.1
    max_retry_after: float = 30.0
    """A 503's Retry-After is honoured up to this many seconds."""
    timeout: float = 10.0
    """Per request: seconds to connect and to wait for the answer."""


class _Transient(Exception):
    """A failure worth another try; `error` is what is raised once the tries are spent."""

    def __init__(self, error: ClientError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class _Backoff:
    """Retry-After when the store sent one (capped), random exponential backoff otherwise."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self._exponential = wait_random_exponential(multiplier=policy.min_wait, max=policy.max_wait)

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, _Transient) and error.retry_after is not None:
            return min(error.retry_after, self.policy.max_retry_after)
        return float(self._exponential(state))


def problem_of(response: requests.Response) -> dict[str, Any]:
    """The problem+json members of an error answer (or a stand-in built from its status and text)."""
    try:
        document = response.json()
    except ValueError:
        document = None
    if isinstance(document, dict):
        return document
    text = response.text.strip()
    return {
        "title": response.reason or "",
        "detail": text[:500] or response.reason or "",
        "status": response.status_code,
    }


class HttpTransport:
    """Requests to `base_url` (the API root, e.g. `http://127.0.0.1:7071/api`) with the retry policy.

    One `requests.Session` (keep-alive) per transport; use one transport per thread.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.session = session or requests.Session()
        self.headers: dict[str, str] = {"Accept": "application/json, application/problem+json"}
        if api_key:
            self.headers[API_KEY_HEADER] = api_key

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """The answer (2xx or 3xx), after retries; `RequestRefused`, `ServerError` or `StoreUnreachable`."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = content_type
        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            stop=stop_after_attempt(max(1, self.retry.attempts)),
            wait=_Backoff(self.retry),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._once(method, url, headers, body, params)
        except _Transient as exc:
            raise exc.error from exc.__cause__
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        params: Mapping[str, str] | None,
    ) -> requests.Response:
        try:
            response = self.session.request(
                method, url, data=body, headers=headers, params=params, timeout=self.retry.timeout
            )
        except requests.RequestException as exc:  # refused, reset, timed out: no answer to go by
            log.info("event store: %s %s: %s (will retry)", method, url, exc)
            raise _Transient(StoreUnreachable(f"{method} {url}: no answer: {exc}")) from exc
        if response.status_code < 400:
            return response
        problem = problem_of(response)
        if response.status_code >= 500:
            log.info("event store: %s %s answered %d (will retry)", method, url, response.status_code)
            error = ServerError(method, url, response.status_code, problem)
            raise _Transient(error, retry_after_seconds(response.headers.get("Retry-After")))
        raise RequestRefused(method, url, response.status_code, problem)

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return _json(self.request("GET", path, params=params))

    def post_json(self, path: str, body: bytes, content_type: str = "application/json") -> Any:
        return _json(self.request("POST", path, body=body, content_type=content_type))

    def put_json(self, path: str, body: bytes = b"{}") -> Any:
        return _json(self.request("PUT", path, body=body))


def _json(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise ProblemAnswer(
            response.request.method or "", response.url, response.status_code, {"detail": f"answer is not JSON: {exc}"}
        ) from exc


def compact_json(value: Any) -> bytes:
    """JSON text as the client sends it: compact, UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
