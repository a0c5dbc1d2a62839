"""The local host refuses HTTP routes the Functions host reserves (its management API at /admin, and
/runtime), as Azure does: a console under /api/admin would run locally and not load in Azure."""

from __future__ import annotations

import azure.functions as func

from eventstore_local.host.functions import describe
from tests.http.client import registered_functions


def _app(*routes: str) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    for n, route in enumerate(routes):

        def handler(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("ok")

        app.function_name(f"f{n}")(app.route(route=route, methods=["GET"])(handler))
    return app


def test_routes_the_functions_host_reserves_are_refused() -> None:
    specs = {s.trigger["route"]: s.unsupported() for s in describe(_app("admin/page", "Administration", "runtime/x"))}
    assert all(reason and "conflicts with one or more built in routes" in reason for reason in specs.values()), specs
    allowed = {s.trigger["route"]: s.unsupported() for s in describe(_app("console/admin", "tenants/{t}/admin"))}
    assert allowed == {"console/admin": None, "tenants/{t}/admin": None}


def test_every_function_of_the_app_would_load_in_azure() -> None:
    refused = {s.name: s.unsupported() for s in describe(registered_functions()) if s.unsupported()}
    assert refused == {}
