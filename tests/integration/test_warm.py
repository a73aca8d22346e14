"""Warm runners: Python jobs run in children forked from a warm parent per environment."""

from __future__ import annotations

import httpx
import pytest
from gristmill.server.platform import Platform

@pytest.fixture(scope="module")
def platform(module_platform: Platform) -> Platform:
    return module_platform


@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


async def preview(api: httpx.AsyncClient, code: str, **args: object) -> httpx.Response:
    return await api.post(
        "/w/main/jobs/run_wait_result/preview",
        json={"content": code, "language": "python3", "args": args},
    )


async def test_a_job_runs_warm(api: httpx.AsyncClient, platform: Platform) -> None:
    code = "import os\ndef main(x: int):\n    print('hi', x)\n    return [x * 2, os.getpid(), os.getcwd()]\n"
    r = await preview(api, code, x=21)
    assert r.status_code == 200, r.text
    print(r.json())
    r = await preview(api, code, x=2)
    print(r.json())
    assert platform.workers is not None
    warm = platform.workers.policy.warm
    assert warm is not None
    print(warm.stats())
    assert warm.stats()["parents"] == 1
