"""Tenant ids and the names derived from them (schema, Blob container).

Tenant ids are validated here before they reach SQL, a schema name or a container name. Marain ids are
lowercase hex, 32 characters per level of the tenant tree; GUIDs also occur.
"""

from __future__ import annotations

import hashlib
import re

from pydantic import BaseModel, ConfigDict

from eventstore.errors import InvalidInput, InvalidTenantId

MAX_TENANT_LEVELS = 8
_HEX_LEVELS = re.compile(rf"(?:[0-9a-f]{{32}}){{1,{MAX_TENANT_LEVELS}}}")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
TENANT_ID_PATTERN = (
    r"^(?:[0-9a-f]{32}){1,8}$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
"""The same rule as `validate_tenant_id`, as an ECMA/JSON Schema pattern (the OpenAPI document)."""
_SIMPLE_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")

PAYLOAD_CONTAINER_LOGICAL_NAME = "eventstore-payloads"


def validate_tenant_id(value: object) -> str:
    """The tenant id in canonical form, or `InvalidTenantId`.

    GUIDs are accepted in either case and lowered, so one tenant never gets two schemas.
    """
    if not isinstance(value, str):
        raise InvalidTenantId("tenant id must be a string", field="tenantId")
    if _HEX_LEVELS.fullmatch(value):
        return value
    if _GUID.fullmatch(value):
        return value.lower()
    raise InvalidTenantId(
        f"tenant id must be lowercase hex in levels of 32 characters (at most {MAX_TENANT_LEVELS} levels) or a GUID",
        field="tenantId",
    )


def schema_name_for(tenant_id: str, prefix: str = "es_") -> str:
    """The default schema for a tenant: a hash, since Marain ids outgrow PostgreSQL's 63-byte names."""
    canonical = validate_tenant_id(tenant_id)
    return prefix + hashlib.sha256(canonical.encode("ascii")).hexdigest()[:40]


def container_name_for(tenant_id: str, logical_name: str = PAYLOAD_CONTAINER_LOGICAL_NAME) -> str:
    """Marain's container naming rule: SHA-1 hex of `"{tenantId}-{logicalName}"` (tenant id lowercase)."""
    canonical = validate_tenant_id(tenant_id)
    return hashlib.sha1(f"{canonical}-{logical_name}".encode(), usedforsecurity=False).hexdigest()


def validate_identifier_prefix(value: str, setting: str) -> str:
    """A schema/role name or prefix that needs no quoting and leaves room for a 40-character hash."""
    if _SIMPLE_IDENTIFIER.fullmatch(value) and len(value) <= 20:
        return value
    raise ValueError(f"{setting} must match [a-z_][a-z0-9_]* and be at most 20 characters, got {value!r}")


_RESERVED_SCHEMAS = re.compile(r"public|information_schema|pg_.*")


def validate_schema_name(value: str) -> str:
    if _RESERVED_SCHEMAS.fullmatch(value):
        raise InvalidInput(f"schema {value} is reserved", field="schema")
    if _SIMPLE_IDENTIFIER.fullmatch(value) and len(value) <= 63:
        return value
    raise InvalidInput("schema must match [a-z_][a-z0-9_]* and be at most 63 characters", field="schema")


_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")


def validate_container_name(value: str) -> str:
    """Azure's rule: 3-63 characters, lowercase letters, digits and single hyphens."""
    if _CONTAINER.fullmatch(value):
        return value
    raise InvalidInput("container must be 3-63 lowercase letters, digits and single hyphens", field="container")


class TenantPlacement(BaseModel):
    """Where one tenant's data lives."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    dsn_name: str
    schema_name: str
    container_name: str
