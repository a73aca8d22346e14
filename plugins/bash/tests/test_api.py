"""Bash scripts end to end: saved through the API, run by real workers on a real Postgres."""

from __future__ import annotations

import httpx
import pytest
from gristmill.testing.contract import require_toolchain
from gristmill_bash.runtime import BashRuntime

pytestmark = pytest.mark.slow

SCRIPT = """\
#!/usr/bin/env bash
image="$1"
tag="${2:-latest}"
echo "deploying $image:$tag" >&2
printf '{"image": "%s", "tag": "%s"}' "$image" "$tag" > result.json
"""


@pytest.fixture(autouse=True)
def _bash() -> None:
    require_toolchain(BashRuntime())


async def _save(api: httpx.AsyncClient, path: str, content: str) -> httpx.Response:
    return await api.post(
        "/w/main/scripts/create", json={"path": path, "content": content, "language": "bash"}
    )


async def test_a_bash_script_runs_through_the_api(api: httpx.AsyncClient) -> None:
    saved = await _save(api, "u/admin/deploy", SCRIPT)
    assert saved.status_code == 201, saved.text
    schema = (await api.get("/w/main/scripts/get/p/u/admin/deploy")).json()["schema"]
    # (The stored schema is jsonb, which does not keep the order of properties.)
    assert set(schema["properties"]) == {"image", "tag"}
    assert schema["required"] == ["image"]
    assert schema["properties"]["tag"]["default"] == "latest"

    r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/deploy", json={"image": "web"})
    assert r.status_code == 200, r.text
    assert r.json() == {"image": "web", "tag": "latest"}
    job = (await api.get(f"/w/main/jobs_u/get/{r.headers['x-job-id']}")).json()
    assert job["success"] is True and job["language"] == "bash"
    assert "deploying web:latest" in job["logs"]

    # Without result.json, the last line printed is the result.
    assert (await _save(api, "u/admin/echo", 'x="$1"\necho "got $x"\n')).status_code == 201
    r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/echo", json={"x": "it"})
    assert r.status_code == 200 and r.json() == "got it"


async def test_bash_failures_and_refusals(api: httpx.AsyncClient) -> None:
    assert (
        await _save(api, "u/admin/fails", "echo 'no space left' >&2\nexit 4\n")
    ).status_code == 201
    r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/fails", json={})
    assert r.status_code == 422
    assert r.json()["error"] == {
        "name": "ExecutionErr",
        "message": "exit code 4; last output:\nno space left",
        "stack": "",
    }
    r = await _save(api, "u/admin/broken", 'x="$1"\nif true; then\n  echo "$x"\n')
    assert r.status_code == 400
    assert "line 2, column 1" in r.text and "`fi` is missing" in r.text
