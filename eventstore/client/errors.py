"""What the client raises: the store refused a request (4xx), failed it past the retries (5xx), or could not
be reached; and what an engine raises when a destination answers an error, so that its trace keeps the
destination's status and body."""

from __future__ import annotations

from typing import Any

from eventstore.errors import EventStoreError


class ClientError(EventStoreError):
    """A request to the event store did not succeed."""


class ProblemAnswer(ClientError):
    """The store answered an error status; the members of its problem+json answer are kept."""

    def __init__(self, method: str, url: str, status: int, problem: dict[str, Any]) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.problem = problem
        self.problem_type: str = str(problem.get("type") or "about:blank")
        self.title: str = str(problem.get("title") or "")
        self.detail: str = str(problem.get("detail") or problem.get("title") or "")
        super().__init__(f"{method} {url} answered {status} ({self.problem_type}): {self.detail}")

    @property
    def kind(self) -> str:
        """The last part of the problem type (`urn:eventstore:problem:unknown-tenant` → `unknown-tenant`)."""
        return self.problem_type.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


class RequestRefused(ProblemAnswer):
    """A 4xx answer: the request itself is wrong (unknown tenant, invalid event...). Never retried."""


class ServerError(ProblemAnswer):
    """A 5xx answer (503 included) that was still the answer after the last retry."""


class StoreUnreachable(ClientError):
    """No answer at all (connection refused or reset, timeout) after the last retry."""


class DestinationError(Exception):
    """A step's destination answered an error (or none). Raised by the engine's own code inside a step: the
    recorder reports `status_code` and `body` in the StepFailed (and ExecutionFailed) event."""

    def __init__(self, message: str, *, status_code: int | None = None, body: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
