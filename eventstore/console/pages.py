"""What every console page shares: who is asking, the tenant it is about, how it is answered (HTML, or a
redirect after a form), and how anything that goes wrong is answered as a page a person can read, never a
stack trace: an unknown tenant or id is a 404, a malformed filter a 400 naming the field, a database that
is down a 503 with Retry-After."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs

import azure.functions as func
from pydantic import BaseModel, ValidationError

from eventstore.console.access import OPEN_ACCESS_NAME, ConsoleRefused, principal, same_origin
from eventstore.console.render import render
from eventstore.errors import EventStoreError, InvalidInput, StoreUnavailable, UnknownTenant
from eventstore.models import invalid_input_from
from eventstore.services import services
from eventstore.settings import Settings
from eventstore.store import EventStore

log = logging.getLogger(__name__)

HTML = "text/html; charset=utf-8"
RETRY_AFTER_SECONDS = 5
_SECURITY_HEADERS = {
    # Nothing but the console's own stylesheet and script; no frame may embed it (clickjacking).
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


M = TypeVar("M", bound=BaseModel)


def parsed(model: type[M], values: Mapping[str, str]) -> M:
    """A query string's or a form's fields as `model` (fields left empty are left out), or `InvalidInput`
    naming the first field it refuses as the URL or form names it."""
    try:
        return model.model_validate({k: v for k, v in values.items() if v != ""})
    except ValidationError as exc:
        raise invalid_input_from(exc) from None


class Missing(Exception):
    """What the URL names is not there: a 404 page saying what."""


@dataclass(frozen=True)
class Asked:
    """A console request: the store, the settings, who asks, the route's values and the query (or form)."""

    req: func.HttpRequest
    store: EventStore
    settings: Settings
    who: str
    form: Mapping[str, str] = field(default_factory=dict)

    def route(self, name: str) -> str:
        return str(self.req.route_params.get(name, ""))

    def query(self, name: str) -> str | None:
        value = self.req.params.get(name)
        return value if value not in (None, "") else None

    def tenant_id(self) -> str:
        """The route's tenant, known to the registry (`UnknownTenant` otherwise)."""
        return self.store.tenant(self.route("tenantId")).tenant_id

    def page(
        self, template: str, title: str, *, tenant_id: str | None = None, section: str = "", **context: Any
    ) -> Page:
        return Page(
            template,
            {
                "title": title, "tenant_id": tenant_id, "section": section, "who": self.who,
                "open_access": self.settings.console_access == "open", "refresh": None, **context,
            },
        )  # fmt: skip


@dataclass(frozen=True)
class Page:
    template: str
    context: dict[str, Any]
    status: int = 200


@dataclass(frozen=True)
class Redirect:
    location: str


@dataclass(frozen=True)
class Download:
    body: bytes
    content_type: str
    filename: str


@dataclass(frozen=True)
class Static:
    body: bytes
    content_type: str


Answer = Page | Redirect | Download | Static
Handler = Callable[[Asked], Answer]

TENANT = "console/tenants/{tenantId}"
"""The route prefix of a tenant's pages."""


@dataclass(frozen=True)
class ConsoleRoute:
    """One page's URL (under /api/, a URL a person can paste into a ticket) and what answers it. Each page
    module declares its own in `ROUTES`; `eventstore.console.routes` collects them."""

    name: str
    """The function's name (never starting with "admin": the Functions host reserves it)."""
    route: str
    handler: Handler
    methods: tuple[str, ...] = ("GET",)


def _form(req: func.HttpRequest) -> dict[str, str]:
    if req.method != "POST":
        return {}
    body = req.get_body() or b""
    if len(body) > 64 * 1024:
        raise InvalidInput("the form is too large", field="form")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise InvalidInput("the form is not UTF-8", field="form") from None
    return {k: v[-1] for k, v in fields.items()}


def answer(req: func.HttpRequest, handler: Handler) -> func.HttpResponse:
    """Run `handler` for `req` and answer it, every failure as a page."""
    who = OPEN_ACCESS_NAME
    settings: Settings | None = None
    try:
        settings = services().settings
        who = principal(req, settings)
        if req.method == "POST":
            same_origin(req)
        result = handler(Asked(req, services().store, settings, who, _form(req)))
    except ConsoleRefused as refused:
        return _problem(refused.status, refused.title, refused.detail, who, settings, sign_in=refused.sign_in)
    except UnknownTenant as exc:
        return _problem(404, "No such tenant", str(exc), who, settings)
    except LookupError as exc:  # an unknown instance, event or sequence
        return _problem(404, "Not found", str(exc), who, settings)
    except Missing as exc:
        return _problem(404, "Not found", str(exc), who, settings)
    except InvalidInput as exc:
        detail = f"{exc.field}: {exc}" if exc.field and not str(exc).startswith(exc.field) else str(exc)
        return _problem(400, "Not understood", detail, who, settings)
    except StoreUnavailable as exc:
        log.warning("console: %s", exc)
        return _problem(
            503, "The store is unavailable", f"{exc} Try again in a few seconds.", who, settings,
            {"Retry-After": str(settings.retry_after_seconds if settings else RETRY_AFTER_SECONDS)},
        )  # fmt: skip
    except EventStoreError as exc:
        return _problem(409, "Cannot do that", str(exc), who, settings)
    except Exception:
        log.exception("console: unexpected failure on %s", req.url)
        return _problem(500, "Something went wrong", "The failure was logged.", who, settings)
    if isinstance(result, Redirect):
        return func.HttpResponse(status_code=303, headers={"Location": result.location, **_SECURITY_HEADERS})
    if isinstance(result, Static):  # the console's own stylesheet and script: the same for everyone
        return func.HttpResponse(
            result.body,
            status_code=200,
            headers={
                **_SECURITY_HEADERS, "Content-Type": result.content_type, "Cache-Control": "public, max-age=3600",
            },
        )  # fmt: skip
    if isinstance(result, Download):
        return func.HttpResponse(
            result.body,
            status_code=200,
            headers={
                **_SECURITY_HEADERS, "Content-Type": result.content_type,
                "Content-Disposition": f'attachment; filename="{result.filename}"',
            },
        )  # fmt: skip
    return func.HttpResponse(
        render(result.template, **result.context),
        status_code=result.status,
        headers={**_SECURITY_HEADERS, "Content-Type": HTML},
    )


def _problem(
    status: int,
    title: str,
    detail: str,
    who: str,
    settings: Settings | None,
    headers: Mapping[str, str] | None = None,
    *,
    sign_in: str | None = None,
) -> func.HttpResponse:
    body = render(
        "problem.html", title=title, detail=detail, status=status, who=who, tenant_id=None, section="",
        sign_in=sign_in,
        open_access=settings is not None and settings.console_access == "open", refresh=None,
    )  # fmt: skip
    return func.HttpResponse(
        body, status_code=status, headers={**_SECURITY_HEADERS, "Content-Type": HTML, **(headers or {})}
    )
