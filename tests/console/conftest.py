"""The console tests' fixtures: the API over HTTP, a tenant onboarded through it, the browser and the
screenshots (tests/console/browser.py)."""

import pytest

from tests.console.browser import browser, shots
from tests.helpers import random_tenant_id
from tests.http.client import HttpApi

__all__ = ["api", "browser", "shots", "tenant"]


@pytest.fixture
def api(api_url: str) -> HttpApi:
    return HttpApi(api_url)


@pytest.fixture
def tenant(api: HttpApi) -> str:
    """A tenant onboarded through the API."""
    tenant_id = random_tenant_id()
    assert api.request("PUT", f"tenants/{tenant_id}").status == 201
    return tenant_id
