"""What the `eventstore` commands that talk to a running app share: the request (with the app's key as
x-functions-key), the answer as JSON, and a refusal as one line (the problem's detail, or the status and the
start of the body) instead of a traceback."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from eventstore.errors import EventStoreError

DEFAULT_URL = "http://127.0.0.1:7071/api"


class AppRequestFailed(EventStoreError):
    """The app refused the request (its problem's detail), or could not be reached."""


Hint = Callable[[str, Mapping[str, Any]], str | None]
"""What to do next for a problem type (its slug) and the problem: names the option or command to use."""


def refusal(method: str, url: str, answer: Any, *, admin_note: str = "", hint: Hint | None = None) -> str:
    """One line for a refused request: the problem's detail (with the hint), or the status and body."""
    problem: Any = None
    if answer.headers.get("Content-Type", "").split(";")[0].strip().endswith("json"):
        try:
            problem = answer.json()
        except ValueError:
            problem = None
    if isinstance(problem, dict) and isinstance(problem.get("detail"), str):
        advice = hint(str(problem.get("type", "")).rsplit(":", 1)[-1], problem) if hint else None
        return f"{problem['detail']} ({advice})" if advice else str(problem["detail"])
    if answer.status_code in (401, 403):
        return f"{method} {url} answered {answer.status_code}: {admin_note or 'the route needs a key'}; pass --key"
    excerpt = " ".join(answer.text.split())[:300]
    return f"{method} {url} answered {answer.status_code}" + (f": {excerpt}" if excerpt else "")


class AppClient:
    def __init__(
        self,
        url: str,
        key: str | None = None,
        *,
        timeout: float = 60.0,
        admin_note: str = "",
        hint: Hint | None = None,
        failure: type[EventStoreError] = AppRequestFailed,
    ) -> None:
        import requests

        self.url = url.rstrip("/")
        self.timeout = timeout
        self._admin_note, self._hint, self._failure = admin_note, hint, failure
        self._session = requests.Session()
        if key:
            self._session.headers["x-functions-key"] = key

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> AppClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def path(self, *segments: str) -> str:
        return "/".join([self.url, *(quote(s, safe="") for s in segments)])

    def call(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        *,
        hint: Hint | None = None,
    ) -> Any:
        import requests

        try:
            answer = self._session.request(method, url, json=body, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise self._failure(
                f"{method} {url} failed: {type(exc).__name__} (is the app running? `eventstore host`, or --url)"
            ) from exc
        if not answer.ok:
            raise self._failure(refusal(method, url, answer, admin_note=self._admin_note, hint=hint or self._hint))
        try:
            return answer.json()
        except ValueError as exc:
            raise self._failure(f"{method} {url} answered something other than JSON") from exc
