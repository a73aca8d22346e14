"""Fixtures of the integration tests: the API behind a real HTTP server, for the schemathesis
run (test_api_fuzz.py) and Windmill's own clients (test_windmill_clients.py), which open their
own connections and, inside jobs, reach the API at ``BASE_INTERNAL_URL``; a workspace per
test on a module's platform."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
import pytest_asyncio
from gristmill.testing.pytest_plugin import SUPERADMIN_SECRET, PgCluster
from gristmill.testing.served import Served, ServedPlatform, served_main_workspace


@pytest.fixture(scope="session")
def served_platform() -> type[ServedPlatform]:
    """:class:`ServedPlatform`, for module fixtures that start one on their own database."""
    return ServedPlatform


@pytest.fixture(scope="module")
def served(pg_cluster: PgCluster) -> Iterator[Served]:
    """A platform of the module's own served on 127.0.0.1 (workspace ``main``), seen by its
    first admin: for Windmill's clients and CLI, which open their own connections."""
    with served_main_workspace(pg_cluster, SUPERADMIN_SECRET, prefix="gm-clients-") as served:
        yield served


@pytest_asyncio.fixture
async def workspace(module_api: httpx.AsyncClient) -> str:
    """A new workspace of the module's platform (``module_api``), for one test: tests that
    list or count what a workspace holds share a platform without seeing each other's
    scripts, jobs and folders (a platform start costs seconds, a workspace a few rows)."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    r = await module_api.post("/workspaces/create", json={"id": name, "name": name})
    assert r.status_code == 201, r.text
    return name
