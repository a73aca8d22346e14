"""Fixtures of the integration tests that need the API behind a real HTTP server: the
schemathesis run (test_api_fuzz.py) and Windmill's own clients (test_windmill_clients.py),
which open their own connections and, inside jobs, reach the API at ``BASE_INTERNAL_URL``."""

from __future__ import annotations

import pytest
from gristmill.testing.served import ServedPlatform


@pytest.fixture(scope="session")
def served_platform() -> type[ServedPlatform]:
    """:class:`ServedPlatform`, for module fixtures that start one on their own database."""
    return ServedPlatform
