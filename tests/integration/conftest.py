"""Fixtures of the integration tests: the API behind a real HTTP server, for the schemathesis
run (test_api_fuzz.py) and Windmill's own clients (test_windmill_clients.py), which open their
own connections and, inside jobs, reach the API at ``BASE_INTERNAL_URL``; a workspace per
test on a module's platform."""

from __future__ import annotations

import uuid

import httpx
import pytest
import pytest_asyncio
from gristmill.testing.served import ServedPlatform


@pytest.fixture(scope="session")
def served_platform() -> type[ServedPlatform]:
    """:class:`ServedPlatform`, for module fixtures that start one on their own database."""
    return ServedPlatform


@pytest_asyncio.fixture
async def workspace(module_api: httpx.AsyncClient) -> str:
    """A new workspace of the module's platform (``module_api``), for one test: tests that
    list or count what a workspace holds share a platform without seeing each other's
    scripts, jobs and folders (a platform start costs seconds, a workspace a few rows)."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    r = await module_api.post("/workspaces/create", json={"id": name, "name": name})
    assert r.status_code == 201, r.text
    return name
