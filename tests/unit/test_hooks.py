"""One test per hook of gristmill.hookspecs, each driving the hook the way the core does."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from uuid import uuid4

import click
import httpx
import pytest
from click.testing import CliRunner
from fastapi import APIRouter, FastAPI
from gristmill.config import Settings
from gristmill.hookspecs import hookimpl
from gristmill.plugins import build_plugin_manager, load_runtimes
from gristmill.runtimes import JobContext, Runtime, Toolchain
from gristmill.runtimes.signature import Signature
from gristmill.worker.jobenv import job_env


class EchoRuntime:
    name = "echo"
    display_name = "Echo"
    aliases = ("ec",)
    file_extensions = (".echo",)

    def parse_signature(self, source: str) -> Signature:
        return Signature()

    def template(self) -> str:
        return "echo"

    def toolchain(self) -> Toolchain:
        return Toolchain(True, "0")

    def prepare(self, ctx):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def collect_result(self, ctx, exit):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def test_hook_register_runtimes() -> None:
    """A plugin's register_runtimes hook puts its runtime in the registry load_runtimes builds."""
    runtime = EchoRuntime()

    class Plugin:
        @hookimpl
        def register_runtimes(self, register: Callable[[Runtime], None]) -> None:
            register(runtime)

    registry = load_runtimes(build_plugin_manager(load_entrypoints=False, extra=[Plugin()]))
    assert registry.get("echo") is runtime
    assert registry.get("ec") is runtime


def test_hook_register_commands() -> None:
    """A plugin adds a click command to the group; the command runs through the CLI."""

    class Plugin:
        @hookimpl
        def register_commands(self, cli: click.Group) -> None:
            @cli.command()
            @click.argument("who")
            def greet(who: str) -> None:
                """Say hello."""
                click.echo(f"hello {who}")

    @click.group()
    def cli() -> None:
        """A fresh top-level group."""

    pm = build_plugin_manager(load_entrypoints=False, extra=[Plugin()])
    pm.hook.register_commands(cli=cli)
    assert "greet" in cli.commands
    result = CliRunner().invoke(cli, ["greet", "mill"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello mill\n"


async def test_hook_register_routes() -> None:
    """A plugin adds a route to the FastAPI app and it answers HTTP requests."""
    router = APIRouter()

    @router.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    class Plugin:
        @hookimpl
        def register_routes(self, app: FastAPI) -> None:
            app.include_router(router, prefix="/api/ext/demo")

    app = FastAPI()
    pm = build_plugin_manager(load_entrypoints=False, extra=[Plugin()])
    pm.hook.register_routes(app=app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get("/api/ext/demo/ping")
        missing = await client.get("/api/ext/other/ping")
    assert r.status_code == 200
    assert r.json() == {"pong": "yes"}
    assert missing.status_code == 404


class FirstEnv:
    @hookimpl
    def job_env(self, job: JobContext) -> Mapping[str, str] | None:
        return {"SHARED": "first", "FIRST": job.workspace_id, "WM_JOB_ID": "forged"}


class SecondEnv:
    @hookimpl
    def job_env(self, job: JobContext) -> Mapping[str, str] | None:
        return {"SHARED": "second", "SECOND": job.env.get("WM_WORKSPACE", "?")}


class NoEnv:
    @hookimpl
    def job_env(self, job: JobContext) -> Mapping[str, str] | None:
        return None


def _ctx(tmp_path: Path) -> JobContext:
    return JobContext(
        id=uuid4(),
        workspace_id="main",
        language="python3",
        code="",
        args={},
        job_dir=tmp_path,
    )


def test_hook_job_env(tmp_path: Path) -> None:
    """pm.hook.job_env(job=...) collects every plugin's mapping; None results are skipped."""
    pm = build_plugin_manager(load_entrypoints=False, extra=[FirstEnv(), NoEnv(), SecondEnv()])
    results = pm.hook.job_env(job=_ctx(tmp_path))
    assert len(results) == 2
    merged: dict[str, str] = {}
    for r in results:
        merged.update(r)
    assert merged.keys() == {"SHARED", "FIRST", "SECOND", "WM_JOB_ID"}
    assert merged["FIRST"] == "main"


def _worker_env(tmp_path: Path, *plugins: object) -> tuple[dict[str, str], str]:
    """The environment the worker builds for a job, with the given job_env plugins."""
    job_id = uuid4()
    job = {
        "id": job_id,
        "workspace_id": "main",
        "permissioned_as": "u/alice",
        "email": "alice@example.com",
        "runnable_path": "u/alice/script",
        "root_job": None,
    }
    env = job_env(
        Settings(data_dir=tmp_path, num_workers=0),
        build_plugin_manager(load_entrypoints=False, extra=plugins),
        b"k" * 32,
        job,
        _ctx(tmp_path),
    )
    return env, str(job_id)


def test_hook_job_env_core_variables_win(tmp_path: Path) -> None:
    """The worker merges plugin variables but a plugin cannot override WM_* variables."""
    env, job_id = _worker_env(tmp_path, FirstEnv(), SecondEnv())
    assert env["WM_JOB_ID"] == job_id
    assert env["FIRST"] == "main"
    # The plugin sees the core's variables in job.env.
    assert env["SECOND"] == "main"
    assert env["WM_WORKSPACE"] == "main"


def test_hook_job_env_later_plugin_wins(tmp_path: Path) -> None:
    """docs/plugins.md: "a later plugin wins on a clash" (SecondEnv is registered later)."""
    env, _ = _worker_env(tmp_path, FirstEnv(), SecondEnv())
    assert env["SHARED"] == "second"


@pytest.mark.parametrize("hook", ["register_runtimes", "register_commands", "register_routes"])
def test_hooks_without_implementations_are_harmless(hook: str) -> None:
    """Calling a hook no plugin implements returns no results."""
    pm = build_plugin_manager(load_entrypoints=False)
    kwargs = {
        "register_runtimes": {"register": lambda r: None},
        "register_commands": {"cli": click.Group()},
        "register_routes": {"app": FastAPI()},
    }[hook]
    assert getattr(pm.hook, hook)(**kwargs) == []
