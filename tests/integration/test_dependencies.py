"""Dependencies end to end: saving a version queues its lock job on the `dependency` tag, the
lock is stored on the version, runs install it once and reuse it; failures are visible and
fail runs fast. Real uv, the real PyPI, a real worker and Postgres."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from gristmill.config import Settings

YAML_AND_REQUESTS = """\
import requests
import yaml


def main(name: str = "world"):
    return {
        "yaml": yaml.safe_dump({"hello": name}).strip(),
        "requests": requests.__version__,
        "session": type(requests.Session()).__name__,
    }
"""

UNKNOWN_PACKAGE = """\
# requirements:
# this-package-does-not-exist-gristmill==1.0.0

def main():
    return 1
"""


async def save(api: httpx.AsyncClient, path: str, content: str, **extra: Any) -> str:
    body = {"path": path, "content": content, "language": "python3", **extra}
    r = await api.post("/w/main/scripts/create", json=body)
    assert r.status_code == 201, r.text
    return r.text


async def deployed(api: httpx.AsyncClient, hash_: str, *, timeout: float = 120.0) -> dict:
    """The deployment status once the version's lock job has ended."""
    deadline = time.monotonic() + timeout
    while True:
        status = (await api.get(f"/w/main/scripts/deployment_status/h/{hash_}")).json()
        if status["status"] != "locking":
            return status
        assert time.monotonic() < deadline, f"still locking after {timeout} s: {status}"
        await asyncio.sleep(0.1)


def environments(settings: Settings) -> list[Path]:
    root = settings.cache_dir / "envs" / "python3"
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]


async def test_a_saved_version_is_locked_installed_once_and_run(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    hash_ = await save(api, "u/admin/deps", YAML_AND_REQUESTS)
    status = await deployed(api, hash_)
    assert status["status"] == "deployed", status
    lock = status["lock"]
    assert lock.startswith("# py: 3.")
    assert "requests==" in lock and "pyyaml==" in lock and "urllib3==" in lock
    assert status["lock_error_logs"] is None
    job = (await api.get(f"/w/main/jobs_u/get/{status['job_id']}")).json()
    assert job["job_kind"] == "dependencies" and job["tag"] == "dependency"
    assert job["result"] == {"status": "Successful lock file generation", "lock": lock}
    assert (await api.get(f"/w/main/scripts/get/h/{hash_}")).json()["lock"] == lock

    first = await api.post("/w/main/jobs/run_wait_result/p/u/admin/deps", json={"name": "mill"})
    assert first.status_code == 200, first.text
    result = first.json()
    assert result["yaml"] == "hello: mill" and result["session"] == "Session"
    assert lock.count(f"requests=={result['requests']}") == 1
    second = await api.post("/w/main/jobs/run_wait_result/p/u/admin/deps", json={})
    assert second.json()["yaml"] == "hello: world"
    assert len(environments(settings)) == 1  # installed once, reused


async def test_a_version_that_cannot_be_locked_says_why_and_its_runs_fail_fast(
    api: httpx.AsyncClient,
) -> None:
    hash_ = await save(api, "u/admin/unknown", UNKNOWN_PACKAGE)
    status = await deployed(api, hash_)
    assert status["status"] == "failed"
    assert status["lock"] is None
    logs = status["lock_error_logs"]
    assert "this-package-does-not-exist-gristmill" in logs
    listed = (await api.get("/w/main/scripts/list")).json()
    assert [s["has_deploy_errors"] for s in listed if s["path"] == "u/admin/unknown"] == [True]

    started = time.monotonic()
    r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/unknown", json={})
    assert time.monotonic() - started < 5
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["name"] == "LockError"
    assert "could not be locked" in error["message"]
    assert "this-package-does-not-exist-gristmill" in error["message"]


async def test_a_script_without_imports_is_ready_at_once(api: httpx.AsyncClient) -> None:
    hash_ = await save(
        api, "u/admin/plain", "import json\n\ndef main():\n    return json.dumps(1)\n"
    )
    status = (await api.get(f"/w/main/scripts/deployment_status/h/{hash_}")).json()
    assert status == {"lock": "", "lock_error_logs": None, "job_id": None, "status": "deployed"}


async def test_a_lock_sent_with_the_version_is_kept_without_a_lock_job(
    api: httpx.AsyncClient,
) -> None:
    """Windmill's CLI sends the lock it generated (`.script.lock`) with the script."""
    lock = "# py: 3.11\nsix==1.16.0\n"
    hash_ = await save(
        api, "u/admin/sent", "import six\n\ndef main():\n    return six.PY3\n", lock=lock
    )
    status = (await api.get(f"/w/main/scripts/deployment_status/h/{hash_}")).json()
    assert status["lock"] == lock and status["job_id"] is None and status["status"] == "deployed"
    r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/sent", json={})
    assert r.status_code == 200, r.text
    assert r.json() is True


async def test_a_runtime_without_dependencies_has_no_lock(api: httpx.AsyncClient) -> None:
    hash_ = await save(api, "u/admin/sh", 'echo "$1"\n', language="bash")
    status = (await api.get(f"/w/main/scripts/deployment_status/h/{hash_}")).json()
    assert status == {"lock": None, "lock_error_logs": None, "job_id": None, "status": "deployed"}


async def test_a_malformed_requirement_is_refused_when_saving(api: httpx.AsyncClient) -> None:
    bad = '# /// script\n# dependencies = ["requests"\n# ///\n\ndef main():\n    return 1\n'
    r = await api.post(
        "/w/main/scripts/create",
        json={"path": "u/admin/bad", "content": bad, "language": "python3"},
    )
    assert r.status_code == 400
    assert "line" in r.text


async def test_previews_lock_on_the_fly_or_use_the_lock_they_carry(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    preview = {"content": YAML_AND_REQUESTS, "language": "python3", "args": {"name": "p"}}
    r = await api.post("/w/main/jobs/run_wait_result/preview", json=preview)
    assert r.status_code == 200, r.text
    assert r.json()["yaml"] == "hello: p"
    logs = (await api.get(f"/w/main/jobs_u/get/{r.headers['x-job-id']}")).json()["logs"]
    assert "installing the dependencies" in logs

    # The lock of that resolution, sent back with the preview: the same environment.
    hash_ = await save(api, "u/admin/deps2", YAML_AND_REQUESTS)
    lock = (await deployed(api, hash_))["lock"]
    carried = await api.post("/w/main/jobs/run_wait_result/preview", json={**preview, "lock": lock})
    assert carried.status_code == 200, carried.text
    assert len(environments(settings)) == 1
