"""Git sync against a real bare repository and the real `git`: deployments of a script, a flow
and a schedule (create, update, archive, delete) become one commit each, in Windmill's folder
format, pushed by the platform's background task; failures are retried and shown."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from gristmill.sync.archive import read_archive
from gristmill.sync.format import to_folder

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git sync needs git")


@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


def _bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    return path


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "--git-dir", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout


def _log(repo: Path) -> list[str]:
    """`author|subject` of each commit, oldest first."""
    return _git(repo, "log", "--reverse", "--format=%an|%s").splitlines()


def _tree(repo: Path) -> list[str]:
    return _git(repo, "ls-tree", "-r", "--name-only", "HEAD").splitlines()


def _show(repo: Path, path: str) -> str:
    return _git(repo, "show", f"HEAD:{path}")


async def _synced(api: httpx.AsyncClient, ws: str, timeout: float = 30) -> dict[str, Any]:
    """The status once no deployment waits (or the last one seen at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        status = (await api.get(f"/w/{ws}/workspaces/git_sync")).json()
        if status["pending"] == 0 or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.1)


async def _setup(api: httpx.AsyncClient, ws: str, url: str) -> None:
    r = await api.post(f"/w/{ws}/folders/create", json={"name": "gs"})
    assert r.status_code in (200, 201), r.text
    r = await api.post(
        f"/w/{ws}/resources/create",
        json={"path": "f/gs/repo", "resource_type": "git_repository", "value": {"url": url}},
    )
    assert r.status_code in (200, 201), r.text
    r = await api.post(
        f"/w/{ws}/workspaces/edit_git_sync_config",
        json={
            "git_sync_settings": {"repositories": [{"git_repo_resource_path": "$res:f/gs/repo"}]}
        },
    )
    assert r.status_code == 200, r.text


#: Who the module's client (the instance's superadmin secret) acts as: the commits' author.
USER = "superadmin_secret"
SCRIPT = 'def main(name: str = "x"):\n    return name\n'
FLOW = {
    "summary": "Say",
    "value": {
        "modules": [
            {
                "id": "a",
                "summary": "Echo",
                "value": {
                    "type": "rawscript",
                    "language": "bash",
                    "content": "echo hi\n",
                    "input_transforms": {},
                },
            }
        ]
    },
    "schema": {"type": "object", "properties": {}},
}


async def test_each_deployment_is_one_commit_in_the_folder_format(
    api: httpx.AsyncClient, workspace: str, tmp_path: Path
) -> None:
    ws = workspace
    repo = _bare(tmp_path / "remote.git")
    await _setup(api, ws, str(repo))
    status = (await api.get(f"/w/{ws}/workspaces/git_sync")).json()
    assert status["git_sync_settings"]["repositories"][0]["git_repo_resource_path"] == (
        "$res:f/gs/repo"
    )
    # Windmill's get_settings shows it with the filters filled in (what its CLI reads).
    settings = (await api.get(f"/w/{ws}/workspaces/get_settings")).json()
    assert settings["git_sync"]["repositories"][0]["settings"] == {
        "include_path": ["f/**"],
        "include_type": ["script", "flow", "schedule"],
        "exclude_path": [],
        "extra_include_path": [],
    }

    r = await api.post(
        f"/w/{ws}/scripts/create",
        json={"path": "f/gs/hello", "content": SCRIPT, "language": "python3", "summary": "Hi"},
    )
    assert r.status_code == 201, r.text
    first_hash = r.text
    r = await api.post(f"/w/{ws}/flows/create", json={"path": "f/gs/say", **FLOW})
    assert r.status_code == 201, r.text
    r = await api.post(
        f"/w/{ws}/schedules/create",
        json={
            "path": "f/gs/hello",  # the script's path: both kinds' files live side by side
            "schedule": "0 0 12 * * *",
            "timezone": "UTC",
            "script_path": "f/gs/hello",
            "is_flow": False,
            "args": {"name": "noon"},
        },
    )
    assert r.status_code == 201, r.text
    status = await _synced(api, ws)
    assert status["pending"] == 0 and status["last_error"] is None, status
    u = USER
    assert _log(repo) == [
        f"{u}|Create script f/gs/hello by {u}",
        f"{u}|Create flow f/gs/say by {u}",
        f"{u}|Create schedule f/gs/hello by {u}",
    ]
    assert status["last_commit"] == _git(repo, "rev-parse", "HEAD").strip()
    tree = _tree(repo)
    assert {"f/gs/hello.py", "f/gs/hello.script.yaml", "f/gs/hello.schedule.yaml"} <= set(tree)
    assert "f/gs/say.flow/flow.yaml" in tree
    assert _show(repo, "f/gs/hello.py") == SCRIPT
    assert yaml.safe_load(_show(repo, "f/gs/hello.script.yaml"))["summary"] == "Hi"
    flow_yaml = yaml.safe_load(_show(repo, "f/gs/say.flow/flow.yaml"))
    content = flow_yaml["value"]["modules"][0]["value"]["content"]
    assert content.startswith("!inline ")
    assert _show(repo, f"f/gs/say.flow/{content.removeprefix('!inline ')}") == "echo hi\n"
    assert yaml.safe_load(_show(repo, "f/gs/hello.schedule.yaml"))["args"] == {"name": "noon"}
    # The same files a sync pull of the workspace writes (its folder format, from its tarball).
    r = await api.get(f"/w/{ws}/workspaces/tarball", params={"include_schedules": "true"})
    assert r.status_code == 200, r.text
    pulled = to_folder(read_archive(r.content))
    pulled = {n: d for n, d in pulled.items() if not n.endswith((".resource.yaml", ".meta.yaml"))}
    assert sorted(pulled) == sorted(tree)
    assert all(_show(repo, n).encode() == pulled[n] for n in tree)

    # Updates and removals: one commit each, the files following; two saves in a row are two
    # commits, each with its own version.
    parent = first_hash
    for value in ("y", "z"):
        r = await api.post(
            f"/w/{ws}/scripts/create",
            json={
                "path": "f/gs/hello",
                "content": SCRIPT.replace('"x"', f'"{value}"'),
                "language": "python3",
                "summary": "Hi",
                "parent_hash": parent,
            },
        )
        assert r.status_code == 201, r.text
        parent = r.text
    r = await api.delete(f"/w/{ws}/schedules/delete/f/gs/hello")
    assert r.status_code == 200, r.text
    r = await api.post(f"/w/{ws}/flows/update/f/gs/say", json={"path": "f/gs/said", **FLOW})
    assert r.status_code == 200, r.text
    status = await _synced(api, ws)
    assert status["pending"] == 0 and status["last_error"] is None, status
    assert [x.split("|")[1] for x in _log(repo)[-4:]] == [
        f"Update script f/gs/hello by {u}",
        f"Update script f/gs/hello by {u}",
        f"Delete schedule f/gs/hello by {u}",
        f"Update flow f/gs/say (moved to f/gs/said) by {u}",
    ]
    assert '"y"' in _git(repo, "show", "HEAD~3:f/gs/hello.py")
    tree = _tree(repo)
    assert '"z"' in _show(repo, "f/gs/hello.py")
    assert "f/gs/hello.schedule.yaml" not in tree and "f/gs/hello.script.yaml" in tree
    assert not [p for p in tree if p.startswith("f/gs/say.flow/")]
    assert "f/gs/said.flow/flow.yaml" in tree
    r = await api.post(f"/w/{ws}/flows/archive/f/gs/said", json={"archived": True})
    assert r.status_code == 200, r.text
    await _synced(api, ws)
    assert _log(repo)[-1].endswith(f"|Archive flow f/gs/said by {u}")
    assert not [p for p in _tree(repo) if ".flow/" in p]
    # A script with dependencies is committed once its lock job has locked them, lock included.
    r = await api.post(
        f"/w/{ws}/scripts/create",
        json={
            "path": "f/gs/dep",
            "content": "import yaml\n\ndef main():\n    return 1\n",
            "language": "python3",
        },
    )
    assert r.status_code == 201, r.text
    status = await _synced(api, ws, timeout=60)
    assert status["pending"] == 0 and status["last_error"] is None, status
    assert _log(repo)[-1].endswith(f"|Create script f/gs/dep by {u}")
    assert "pyyaml" in _show(repo, "f/gs/dep.script.lock").lower()
    r = await api.post(f"/w/{ws}/scripts/delete/p/f/gs/hello")
    assert r.status_code == 200, r.text
    await _synced(api, ws)
    assert _log(repo)[-1].endswith(f"|Delete script f/gs/hello by {u}")
    assert not [p for p in _tree(repo) if p.startswith("f/gs/hello")]


async def test_a_failing_repository_is_retried_and_its_error_shown(
    api: httpx.AsyncClient, workspace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ws = workspace
    caplog.set_level(logging.WARNING, logger="gristmill.sync.git")
    missing = tmp_path / "not-yet.git"
    await _setup(api, ws, str(missing))
    r = await api.post(
        f"/w/{ws}/scripts/create",
        json={"path": "f/gs/late", "content": SCRIPT, "language": "python3"},
    )
    assert r.status_code == 201, r.text  # the deployment itself is not held up
    deadline = time.monotonic() + 20
    while True:
        status = (await api.get(f"/w/{ws}/workspaces/git_sync")).json()
        if status["last_error"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert status["pending"] == 1 and "git" in status["last_error"], status
    # The server's log says so too.
    assert any(f"git sync of workspace {ws} failed" in r.getMessage() for r in caplog.records)
    # The repository appears: the next attempt commits the waiting deployment.
    _bare(missing)
    status = await _synced(api, ws)
    assert status["pending"] == 0 and status["last_error"] is None, status
    assert [x.split("|")[1] for x in _log(missing)] == [f"Create script f/gs/late by {USER}"]


async def test_the_setting_is_checked(
    api: httpx.AsyncClient, workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace
    route = f"/w/{ws}/workspaces/edit_git_sync_config"
    body = {"git_sync_settings": {"repositories": [{"git_repo_resource_path": "$res:f/gs/nope"}]}}
    r = await api.post(route, json=body)
    assert r.status_code == 400 and "no resource f/gs/nope" in r.text, r.text
    monkeypatch.setenv("PATH", "/nonexistent")
    r = await api.post(route, json=body)
    assert r.status_code == 400 and "git not found" in r.text, r.text
    monkeypatch.undo()
    # Off: no repository.
    r = await api.post(route, json={"git_sync_settings": None})
    assert r.status_code == 200, r.text
    assert (await api.get(f"/w/{ws}/workspaces/git_sync")).json()["git_sync_settings"] is None
