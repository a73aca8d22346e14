"""A runtime whose toolchain is missing: its jobs go nowhere, and say why at once."""

from __future__ import annotations

from collections.abc import Callable

from gristmill import JobContext, JobOutcome, ProcessExit, Recipe, Signature, Toolchain, hookimpl
from gristmill.config import Settings
from gristmill.runtimes import Runtime

from .test_worker import running

MISSING = (
    "cobol was not found on PATH; install it with `apt-get install gnucobol` or set COBOL_PATH"
)


class Cobol:
    name = "cobol"
    display_name = "COBOL"
    aliases = ()
    file_extensions = (".cob",)

    def parse_signature(self, source: str) -> Signature:
        return Signature()

    def template(self) -> str:
        return "DISPLAY 'HI'."

    def toolchain(self) -> Toolchain:
        return Toolchain(False, message=MISSING)

    def prepare(self, ctx: JobContext) -> Recipe:
        raise AssertionError("a worker without the toolchain must never take the job")

    def collect_result(self, ctx: JobContext, exit: ProcessExit) -> JobOutcome:
        raise AssertionError("never run")


class CobolPlugin:
    @hookimpl
    def register_runtimes(self, register: Callable[[Runtime], None]) -> None:
        register(Cobol())


async def test_a_job_no_worker_can_run_fails_with_the_reason(settings: Settings) -> None:
    async with running(settings, plugins=[CobolPlugin()]) as (platform, api):
        assert platform.workers is not None
        assert "cobol" not in platform.workers.tags and "python3" in platform.workers.tags
        workers = (await api.get("/workers/list")).json()
        assert len(workers) == 1
        assert workers[0]["unavailable_runtimes"]["cobol"] == MISSING
        assert "python3" in workers[0]["custom_tags"]
        r = await api.post(
            "/w/main/jobs/run_wait_result/preview",
            json={"content": "DISPLAY 'HI'.", "language": "cobol"},
        )
        assert r.status_code == 422
        error = r.json()["error"]
        assert error["name"] == "ToolchainMissing"
        assert "no worker can run cobol jobs" in error["message"]
        assert "apt-get install gnucobol" in error["message"] and "COBOL_PATH" in error["message"]
        job = (await api.get(f"/w/main/jobs_u/get/{r.headers['x-job-id']}")).json()
        assert job["type"] == "CompletedJob" and job["language"] == "cobol"
        # Python jobs are unaffected.
        ok = await api.post(
            "/w/main/jobs/run_wait_result/preview",
            json={"content": "def main():\n    return 1\n", "language": "python3"},
        )
        assert ok.json() == 1


async def test_without_any_worker_a_job_waits(settings: Settings) -> None:
    """A server alone cannot know what workers will come: the job stays queued."""
    async with running(settings.with_overrides(mode="server"), plugins=[CobolPlugin()]) as (_, api):
        assert (await api.get("/workers/list")).json() == []
        r = await api.post(
            "/w/main/jobs/run/preview", json={"content": "DISPLAY 'HI'.", "language": "cobol"}
        )
        job = (await api.get(f"/w/main/jobs_u/get/{r.text}")).json()
        assert job["type"] == "QueuedJob" and job["running"] is False


async def test_a_stopped_worker_is_no_longer_listed(settings: Settings) -> None:
    async with running(settings) as (platform, api):
        assert len((await api.get("/workers/list")).json()) == 1
        assert platform.workers is not None
        await platform.workers.stop(grace_s=0)
        platform.workers = None
        assert (await api.get("/workers/list")).json() == []
