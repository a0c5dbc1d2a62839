from __future__ import annotations

import pytest

from eventstore import InvalidTenantId
from eventstore.tenancy import container_name_for, schema_name_for, validate_tenant_id

CLIENT = "75b9261673c2714681f14c97bc0439fb45a820d625de884bb5a127d6b1104f82"


@pytest.mark.parametrize(
    "tenant_id",
    [
        "f26450ab1668784bb327951c8b08f347",
        CLIENT,
        "0" * 32 * 8,
        "ab5064f2-6816-4b78-b327-951c8b08f347",
    ],
)
def test_valid_ids_pass_unchanged(tenant_id: str) -> None:
    assert validate_tenant_id(tenant_id) == tenant_id


def test_guid_is_lowered_so_one_tenant_never_gets_two_schemas() -> None:
    assert validate_tenant_id("AB5064F2-6816-4B78-B327-951C8B08F347") == "ab5064f2-6816-4b78-b327-951c8b08f347"
    assert schema_name_for("AB5064F2-6816-4B78-B327-951C8B08F347") == schema_name_for(
        "ab5064f2-6816-4b78-b327-951c8b08f347"
    )


@pytest.mark.parametrize(
    "tenant_id",
    [
        "",
        "abc",
        "F26450AB1668784BB327951C8B08F347",  # hex levels are lowercase only
        "f26450ab1668784bb327951c8b08f34",  # 31
        "f26450ab1668784bb327951c8b08f3470",  # 33
        "0" * 32 * 9,  # too many levels
        "f26450ab1668784bb327951c8b08f347; DROP SCHEMA public",
        "../../etc/passwd",
        "f26450ab1668784bb327951c8b08f347\n",
        "ab5064f2-6816-4b78-b327-951c8b08f34",
        None,
        42,
    ],
)
def test_invalid_ids_are_refused(tenant_id: object) -> None:
    with pytest.raises(InvalidTenantId):
        validate_tenant_id(tenant_id)


def test_schema_names_are_short_distinct_and_stable() -> None:
    long_id = "0" * 32 * 8
    names = {schema_name_for(t) for t in (CLIENT, long_id, "f26450ab1668784bb327951c8b08f347")}
    assert len(names) == 3
    assert all(len(n.encode()) <= 63 and n.startswith("es_") for n in names)
    assert schema_name_for(CLIENT) == schema_name_for(CLIENT)
    assert schema_name_for(CLIENT, prefix="x_").startswith("x_")


def test_container_names_follow_marains_rule() -> None:
    # From Marain's tenants (shared/samples/marain/tenants.json): SHA-1 of "{tenantId}-{logicalName}".
    known = [
        ("f26450ab1668784bb327951c8b08f347", "corvustenancy", "cce7b3deef3998aad88f5f0116f922a94e7cb6c4"),
        ("3633754ac4c9be44b55bfe791b1780f1", "corvustenancy", "513162c27e77e52411ececa40f1e615455b01fc5"),
        ("75b9261673c2714681f14c97bc0439fb", "corvustenancy", "8f33344016814e24b39748c7d33e9da6f7772875"),
        (CLIENT, "workflowdefinitions", "1049c8a4766576709fb57d903edf49171e0fb15f"),
    ]
    for tenant_id, logical, physical in known:
        assert container_name_for(tenant_id, logical) == physical
