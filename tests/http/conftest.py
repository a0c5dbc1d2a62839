"""Fixtures of the HTTP tests: the API over real HTTP, and a tenant onboarded through it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import random_tenant_id
from tests.http.client import Api, serve_api


@pytest.fixture(scope="session")
def api(request: pytest.FixtureRequest, database_url: str) -> Iterator[Api]:
    yield from serve_api(request, database_url)


@pytest.fixture
def tenant_id(api: Api) -> str:
    """A tenant onboarded through the API."""
    tenant = random_tenant_id()
    assert api.request("PUT", f"tenants/{tenant}").status == 201
    return tenant
