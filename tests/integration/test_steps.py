"""Runtimes whose jobs take several steps (compile, then run), through the real worker.

The runtime here is a real one of the smallest kind: its "source" is a shell line, its build
step writes a file into the runtime's cache, its run step uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gristmill import (
    JobContext,
    JobOutcome,
    Mount,
    ProcessExit,
    Recipe,
    Signature,
    Toolchain,
    hookimpl,
    read_result_file,
)
from gristmill.config import Settings
from gristmill.runtimes import Runtime

from .test_api_jobs import completed
from .test_worker import running


class ShellSteps:
    name = "shsteps"
    display_name = "Shell in steps"
    aliases = ()
    file_extensions = (".shs",)

    def parse_signature(self, source: str) -> Signature:
        return Signature()

    def template(self) -> str:
        return "echo hi"

    def toolchain(self) -> Toolchain:
        return Toolchain(True, "sh")

    def prepare(self, ctx: JobContext) -> list[Recipe]:
        assert ctx.cache_dir is not None
        build, run = ctx.code.split("||")
        env = dict(ctx.env)
        cache = str(ctx.cache_dir)
        # The build fills the cache (writable there); the run only reads it.
        return [
            Recipe(
                ["/bin/sh", "-c", build, "sh", cache],
                env,
                ctx.job_dir,
                phase="build",
                failure_name="CompilationError",
                mounts=[Mount(cache, writable=True)],
            ),
            Recipe(["/bin/sh", "-c", run, "sh", cache], env, ctx.job_dir, mounts=[Mount(cache)]),
        ]

    def collect_result(self, ctx: JobContext, exit: ProcessExit) -> JobOutcome:
        return read_result_file(ctx, exit)


class ShellStepsPlugin:
    @hookimpl
    def register_runtimes(self, register: Callable[[Runtime], None]) -> None:
        register(ShellSteps())


async def run(settings: Settings, code: str) -> dict[str, Any]:
    async with running(settings, plugins=[ShellStepsPlugin()]) as (_, api):
        r = await api.post(
            "/w/main/jobs/run/preview", json={"content": code, "language": "shsteps"}
        )
        assert r.status_code == 201, r.text
        outcome = await completed(api, r.text)
        logs = (await api.get(f"/w/main/jobs_u/get_logs/{r.text}")).text
        return {**outcome, "logs": logs}


async def test_steps_run_in_order_and_the_cache_outlives_the_job(settings: Settings) -> None:
    code = (
        'echo building; echo compiled > "$1/artifact"'
        '||echo running; cat "$1/artifact"; printf \'"%s"\' "$1" > result.json'
    )
    outcome = await run(settings, code)
    assert outcome["success"] is True, outcome
    cache_dir = Path(outcome["result"])
    assert cache_dir == settings.data_dir / "cache" / "shsteps"
    assert (cache_dir / "artifact").read_text() == "compiled\n"
    assert outcome["logs"] == "building\nrunning\ncompiled\n"


async def test_a_failed_build_step_is_the_jobs_error(settings: Settings) -> None:
    outcome = await run(settings, "echo 'main.x:3: syntax error' >&2; exit 2||echo never")
    assert outcome["success"] is False
    error = outcome["result"]["error"]
    assert error["name"] == "CompilationError"
    assert error["message"] == "build failed (exit code 2):\nmain.x:3: syntax error"
    assert "never" not in outcome["logs"]


async def test_the_timeout_covers_all_steps(settings: Settings) -> None:
    short = settings.with_overrides(job_timeout_s=1)
    outcome = await run(short, "sleep 0.8||sleep 0.8; echo 1 > result.json")
    assert outcome["success"] is False
    assert "timed out after 1 s" in outcome["result"]["error"]["message"]
    assert "during run" in outcome["result"]["error"]["message"]
