"""Tenants: onboard (PUT, auth level ADMIN) and show (GET) where a tenant's data lives."""

from __future__ import annotations

import azure.functions as func

from eventstore.errors import UnknownTenant, UnsupportedContentType
from eventstore.http.exchange import body_within_limit, header, json_response, route_param, tenant_path
from eventstore.http.models import TenantPlacementRequest, TenantPlacementResponse
from eventstore.http.problems import HttpProblem
from eventstore.http.routes import http_function
from eventstore.ingest import is_json_media_type
from eventstore.models import JSON_CONTENT_TYPE
from eventstore.runtime import get_store
from eventstore.tenancy import TenantPlacement, validate_tenant_id

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]


def _response(placement: TenantPlacement, status: int) -> func.HttpResponse:
    body = TenantPlacementResponse(
        tenant_id=placement.tenant_id,
        dsn_name=placement.dsn_name,
        schema_name=placement.schema_name,
        container=placement.container_name,
    )
    headers = {"Location": tenant_path(placement.tenant_id)} if status == 201 else {}
    return json_response(body, status, headers)


@http_function(blueprint, "put_tenant")
def put_tenant(req: func.HttpRequest) -> func.HttpResponse:
    store = get_store()
    tenant_id = validate_tenant_id(route_param(req, "tenantId"))
    body = body_within_limit(req, store.settings)
    wanted = TenantPlacementRequest()
    if body.strip():
        if not is_json_media_type(header(req, "Content-Type")):
            raise UnsupportedContentType(header(req, "Content-Type"), (JSON_CONTENT_TYPE,))
        wanted = TenantPlacementRequest.model_validate_json(body)
    existing = store.registry.find(tenant_id)
    if existing is not None:
        asked = {"dsnName": wanted.dsn_name, "schema": wanted.schema_name, "container": wanted.container}
        has = {"dsnName": existing.dsn_name, "schema": existing.schema_name, "container": existing.container_name}
        moved = sorted(name for name, value in asked.items() if value is not None and value != has[name])
        if moved:
            raise HttpProblem(
                409,
                "Tenant placed elsewhere",
                f"tenant {tenant_id} is already placed with {', '.join(f'{n} {has[n]!r}' for n in moved)}; "
                "moving a tenant is not supported",
                slug="tenant-placed-elsewhere",
                extensions={"field": moved[0]},
            )
    placement = store.onboard_tenant(
        tenant_id, dsn_name=wanted.dsn_name, schema=wanted.schema_name, container=wanted.container
    )
    return _response(placement, 200 if existing is not None else 201)


@http_function(blueprint, "get_tenant")
def get_tenant(req: func.HttpRequest) -> func.HttpResponse:
    tenant_id = validate_tenant_id(route_param(req, "tenantId"))
    placement = get_store().registry.find(tenant_id)
    if placement is None:
        raise UnknownTenant(tenant_id)
    return _response(placement, 200)
