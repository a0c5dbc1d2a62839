"""Failure categories: a stable fingerprint of a failed execution (message type, workflow, failing step,
error class, normalised message), so that a burst of one problem is one group in Slack, the weekly email
and the metrics, not 500 lines.

The fingerprint must be the same in every process and on every run, and must not change when only the ids,
numbers or quoted values in an error message do: `normalise_message` replaces those by placeholders, and
`Category.category_id` is a hash of a canonical JSON of the members (never Python's `hash`, which is salted
per process). Changing what goes in moves every category: `FINGERPRINT_VERSION` is part of the hash so
that such a change is a visible, deliberate one.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import BaseModel, ConfigDict, computed_field

from eventstore.views.traces import ExecutionRow, StepRow

FINGERPRINT_VERSION = 1
MESSAGE_LIMIT = 200
UNKNOWN = "unknown"

# Order matters: a URL's query string and an e-mail address go before the numbers and hex inside them
# would be cut into pieces; quoted values go before the ids they may hold.
_URL_QUERY = re.compile(r"\b((?:https?|ftp)://[^\s?#'\"<>]+)\?[^\s#'\"<>]*")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A quote not inside a word, so that "can't ... don't" is not taken for a quoted value.
_QUOTED = re.compile(r"\"[^\"\n]*\"|(?<!\w)'[^'\n]*'(?!\w)|`[^`\n]*`")
_UUID = re.compile(r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b")
# Hex ids: 0x-prefixed, or 8+ hex characters with a digit in them (so "deadline" or "accepted" stay words).
_HEX = re.compile(r"\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SPACE = re.compile(r"\s+")

# "ValueError: ..." as eventstore.client reports an exception; "requests.exceptions.ConnectTimeout".
_EXCEPTION = re.compile(r"^\s*((?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Timeout|Fault|Failure|Refused|Denied))\b")
_CLASS_PREFIX = re.compile(r"^\s*((?:[A-Za-z_]\w*\.)*[A-Z][A-Za-z0-9_]*)\s*:")
# An error code such as ECONNREFUSED, ETIMEDOUT or DEADLINE_EXCEEDED.
_CODE = re.compile(r"\b(E[A-Z]{4,}|[A-Z]{2,}(?:_[A-Z0-9]+)+)\b")


def normalise_message(text: str | None) -> str:
    """`text` with what varies between two reports of one problem replaced by placeholders: lower case; URL
    query strings (`?<query>`), e-mail addresses (`<email>`), quoted values (`<str>`), UUIDs (`<uuid>`),
    hex ids of 8 or more characters (`<hex>`), numbers (`<n>`); whitespace collapsed; at most 200 characters."""
    if not text:
        return ""
    out = text.lower()
    out = _URL_QUERY.sub(r"\1?<query>", out)
    out = _EMAIL.sub("<email>", out)
    out = _QUOTED.sub("<str>", out)
    out = _UUID.sub("<uuid>", out)
    out = _HEX.sub("<hex>", out)
    out = _NUMBER.sub("<n>", out)
    out = _SPACE.sub(" ", out).strip()
    return out[:MESSAGE_LIMIT].rstrip()


def error_class(message: str | None, status_code: int | None) -> str:
    """What kind of error: the destination's status (`http 503`), else the exception class or error code
    the message starts with or names (`TimeoutError`, `ECONNREFUSED`), else `unknown`."""
    if status_code is not None:
        return f"http {status_code}"
    text = message or ""
    for pattern in (_EXCEPTION, _CLASS_PREFIX, _CODE):
        found = pattern.search(text)
        if found:
            return found.group(1)
    return UNKNOWN


class Category(BaseModel):
    """One failure category. Two failures are the same problem when every member is equal."""

    model_config = ConfigDict(frozen=True)

    message_type: str | None
    workflow_id: str | None
    step: str | None
    """The failing step's name; None when the execution failed outside any step."""
    error_class: str
    message: str
    """The error message, normalised (`normalise_message`)."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def category_id(self) -> str:
        """16 hex characters of a SHA-256 over a canonical JSON of the members: the same everywhere."""
        canonical = json.dumps(
            {
                "v": FINGERPRINT_VERSION,
                "messageType": self.message_type,
                "workflowId": self.workflow_id,
                "step": self.step,
                "errorClass": self.error_class,
                "message": self.message,
            },
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    @property
    def title(self) -> str:
        """A one-line name for people: `send-email: http 503 — mail answered <n> service unavailable`."""
        where = self.step or "(no step)"
        return f"{where}: {self.error_class}" + (f" — {self.message}" if self.message else "")


def _error(text: str | None) -> dict[str, Any]:
    """An error as the views keep it (JSON `{"message", "statusCode", "body"}`), leniently."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"message": text}
    return value if isinstance(value, dict) else {"message": str(value)}


def category_of(execution: ExecutionRow, step: StepRow | None, message_type: str | None) -> Category:
    """The category of a failed execution, from its row and its failing step's row (the failed step, None
    when it failed outside any step) as the executions view holds them, and its message's type."""
    error = _error(step.error if step is not None else None) or _error(execution.error)
    message = error.get("message")
    message = message if isinstance(message, str) else None
    if not message:
        # No message: the destination's answer is the next best description of the problem.
        body = error.get("body")
        message = body if isinstance(body, str) else None
    status = error.get("statusCode")
    status = status if isinstance(status, int) and not isinstance(status, bool) else None
    return Category(
        message_type=message_type,
        workflow_id=execution.workflow_id,
        step=step.name if step is not None else None,
        error_class=error_class(message, status),
        message=normalise_message(message),
    )


# --- links ---------------------------------------------------------------------------------------------


CONSOLE_PATH = "/api/console"
"""The operator console (docs/console.md; not /api/admin, which the Functions host reserves)."""


def admin_url(base_url: str, tenant_id: str, page: str, query: dict[str, str | None]) -> str:
    """The console page `page` of a tenant with `query` (members None left out). Every link an alert, post
    or email carries is built here, so that the console's paths change in one place."""
    kept = {k: v for k, v in query.items() if v is not None}
    path = f"{base_url.rstrip('/')}{CONSOLE_PATH}/tenants/{quote(tenant_id, safe='')}/{page}"
    return f"{path}?{urlencode(kept)}" if kept else path


def deployment_url(base_url: str, page: str, query: dict[str, str | None]) -> str:
    """A console page of the deployment rather than of one tenant (the dead letters that name no tenant)."""
    kept = {k: v for k, v in query.items() if v is not None}
    path = f"{base_url.rstrip('/')}{CONSOLE_PATH}/{page}"
    return f"{path}?{urlencode(kept)}" if kept else path


def failures_url(
    base_url: str, tenant_id: str, start: datetime, end: datetime, *, category_id: str | None = None
) -> str:
    """The failures page of a tenant in [start, end), of one category when given."""
    return admin_url(
        base_url, tenant_id, "failures", {"category": category_id, "from": start.isoformat(), "to": end.isoformat()}
    )


def replay_url(
    base_url: str,
    tenant_id: str,
    start: datetime,
    end: datetime,
    *,
    message_type: str | None = None,
    workflow_id: str | None = None,
) -> str:
    """A bulk replay of the failed messages of a group and time window, filled in and opened at its dry run
    (the count and a sample: nothing is sent before the operator starts it)."""
    query = {
        "status": "failed",
        "messageType": message_type,
        "workflow": workflow_id,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "dryrun": "1",
    }
    return admin_url(base_url, tenant_id, "replays", query)
