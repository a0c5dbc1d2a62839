"""The operator console over HTTP: each page of `eventstore.console.routes` as an HTTP function. Function-level
auth is anonymous: in Azure, App Service Authentication (Entra ID) stands in front of the app, and the console
checks its signed-in principal itself (`EVENTSTORE_CONSOLE_ACCESS`)."""

from __future__ import annotations

from collections.abc import Callable

import azure.functions as func

from eventstore.console.pages import Handler, answer
from eventstore.console.routes import ROUTES

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]


def _function(handler: Handler) -> Callable[[func.HttpRequest], func.HttpResponse]:
    def serve(req: func.HttpRequest) -> func.HttpResponse:
        return answer(req, handler)

    return serve


for _route in ROUTES:
    blueprint.function_name(_route.name)(
        blueprint.route(route=_route.route, methods=list(_route.methods), auth_level=func.AuthLevel.ANONYMOUS)(
            _function(_route.handler)
        )
    )
