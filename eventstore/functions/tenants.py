"""Tenants: onboard (PUT, auth level ADMIN) and show (GET) where a tenant's data lives."""

from __future__ import annotations

import azure.functions as func

from eventstore.errors import UnknownTenant, UnsupportedContentType
from eventstore.http.examples import EXAMPLE_TENANT
from eventstore.http.exchange import body_within_limit, header, json_response, route_param, tenant_path
from eventstore.http.models import TenantPlacementRequest, TenantPlacementResponse
from eventstore.http.problems import HttpProblem
from eventstore.http.routes import LOCATION, Body, Operation, Reply, http_function
from eventstore.ingest import is_json_media_type
from eventstore.models import JSON_CONTENT_TYPE
from eventstore.services import services
from eventstore.tenancy import TenantPlacement, validate_tenant_id

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]

_PLACEMENT_EXAMPLE = {
    "tenantId": EXAMPLE_TENANT,
    "dsnName": "default",
    "schema": "es_0c4b9a3f6e2d4b1a9c8e7f6a5b4c3d2e1f0a9b8c",
    "container": "3c0f4c0cc8f4e6a1d7c0c5b0c7e1c2b3a4d5e6f7",
}


def _response(placement: TenantPlacement, status: int) -> func.HttpResponse:
    body = TenantPlacementResponse(
        tenant_id=placement.tenant_id,
        dsn_name=placement.dsn_name,
        schema_name=placement.schema_name,
        container=placement.container_name,
    )
    headers = {"Location": tenant_path(placement.tenant_id)} if status == 201 else {}
    return json_response(body, status, headers)


PUT_TENANT = Operation(
    name="put_tenant",
    method="PUT",
    route="tenants/{tenantId}",
    auth_level="ADMIN",
    tag="tenants",
    summary="Onboard a tenant (idempotent)",
    description="Creates or migrates the tenant's schema and registers where its data lives. The optional "
    "body places it (named DSN, schema, Blob container); without it the placement derives from the tenant "
    "id. Repeating the call answers 200 with the same placement; asking to move a tenant answers 409. An app "
    "deployed without the owner DSN (its own database login) answers 403: onboarding then runs from the "
    "command line (`eventstore tenant onboard`, infra/migrate.sh).",
    body=Body(
        {JSON_CONTENT_TYPE: TenantPlacementRequest},
        "Optional placement.",
        required=False,
        example={"dsnName": "default"},
    ),
    replies=(
        Reply(201, "Onboarded now.", TenantPlacementResponse, headers=(LOCATION,), example=_PLACEMENT_EXAMPLE),
        Reply(
            200,
            "Already onboarded (schema migrated if needed).",
            TenantPlacementResponse,
            example=_PLACEMENT_EXAMPLE,
        ),
    ),
    errors=(400, 403, 409, 415, 503),
)


@http_function(blueprint, PUT_TENANT)
def put_tenant(req: func.HttpRequest) -> func.HttpResponse:
    store = services().store
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


GET_TENANT = Operation(
    name="get_tenant",
    method="GET",
    route="tenants/{tenantId}",
    auth_level="FUNCTION",
    tag="tenants",
    summary="Where a tenant's data lives",
    description="The tenant's placement, or 404 when it was never onboarded.",
    replies=(Reply(200, "The placement.", TenantPlacementResponse, example=_PLACEMENT_EXAMPLE),),
    errors=(400, 404, 503),
)


@http_function(blueprint, GET_TENANT)
def get_tenant(req: func.HttpRequest) -> func.HttpResponse:
    tenant_id = validate_tenant_id(route_param(req, "tenantId"))
    placement = services().store.registry.find(tenant_id)
    if placement is None:
        raise UnknownTenant(tenant_id)
    return _response(placement, 200)


OPERATIONS = (PUT_TENANT, GET_TENANT)
