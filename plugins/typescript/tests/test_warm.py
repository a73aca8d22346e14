"""Warm mode of the Bun and Deno runtimes, through a real platform (Postgres, workers, the
default sandbox): each job runs in a runtime process the core's fork server started, isolated,
before the job came (``WarmSpec.exec_argv``), which reads its job on descriptor 3.

A warm run's wrapper was started with ``--warm`` (its job came on descriptor 3), a cold run's
with the argument spec: ``WARM`` below tells one from the other. (Both are PID 2 of their own
namespace, under an init: bwrap's cold, the core's warm.)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from gristmill.config import Settings
from gristmill.server.platform import Platform
from gristmill.testing.contract import require_toolchain
from gristmill.testing.runner import run_job_async
from gristmill.testing.waiting import wait_until
from gristmill_typescript.bun import BunRuntime
from gristmill_typescript.deno import DenoRuntime

pytestmark = pytest.mark.slow

ECHO = """\
import { readdirSync } from "node:fs";

export async function main(name: string, when: Date, n: bigint, tags: string[] = ["a"]) {
  console.log(`hello ${name}`);
  console.error("to stderr");
  return {
    pid: process.argv.includes("--warm") ? 1 : process.pid,
    greeting: `Hello, ${name}!`,
    year: when.getUTCFullYear(),
    n,
    tags,
    files: readdirSync(".").sort(),
    home: process.env.HOME,
    job: process.env.WM_JOB_ID,
    transpilerCache: process.env.BUN_RUNTIME_TRANSPILER_CACHE_PATH,
  };
}
"""

FAILING = """\
function check(limit: number) {
  throw new RangeError(`over the limit: ${limit}`);
}

export function main(limit: number) {
  check(limit);
}
"""

SLEEPER = """\
export async function main() {
  console.log("started");
  await new Promise((resolve) => setTimeout(resolve, 60_000));
  return "too late";
}
"""


@pytest.fixture(scope="module")
def module_settings(module_settings: Settings) -> Settings:
    # A small result cap for the huge result's test (the other jobs return little).
    return module_settings.with_overrides(max_result_size_mb=1)


@pytest.fixture(scope="module")
def platform(module_platform: Platform) -> Platform:
    return module_platform


@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


@pytest.fixture(autouse=True)
def bun_toolchain() -> None:
    # Skipped, saying "bun toolchain missing", where Bun is not installed (CI has it).
    require_toolchain(BunRuntime())


async def start(
    api: httpx.AsyncClient, code: str, args: dict[str, Any] | None = None, **params: Any
) -> str:
    language = params.pop("language", "bun")
    r = await api.post(
        "/w/main/jobs/run/preview",
        params=params,
        json={"content": code, "language": language, "args": args or {}},
    )
    assert r.status_code == 201, r.text
    return r.text


async def outcome(api: httpx.AsyncClient, job_id: str) -> tuple[bool, Any, str]:
    async def done() -> dict[str, Any] | None:
        r = await api.get(f"/w/main/jobs_u/completed/get_result_maybe/{job_id}")
        body = r.json()
        return body if body["completed"] else None

    body = await wait_until(done, timeout=30.0)
    logs = (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text
    return body["success"], body["result"], logs


async def run(
    api: httpx.AsyncClient, code: str, args: dict[str, Any] | None = None, **params: Any
) -> tuple[bool, Any, str]:
    """Run ``code`` as a preview and wait: (success, result or error, logs)."""
    return await outcome(api, await start(api, code, args, **params))


def warm_parents(platform: Platform) -> int:
    assert platform.workers is not None
    pool = platform.workers.policy.warm
    assert pool is not None, "warm mode is on by default"
    assert pool.isolates, "the default sandbox isolates each warm child"
    return pool.stats()["parents"]


async def test_a_bun_job_runs_warm(api: httpx.AsyncClient, platform: Platform) -> None:
    args = {"name": "world", "when": "2024-05-06T07:08:09Z", "n": 12}
    job_id = await start(api, ECHO, args)
    ok, result, logs = await outcome(api, job_id)
    assert ok, (result, logs)
    assert result == {
        # 1: a warm run (its wrapper started with --warm).
        "pid": 1,
        "greeting": "Hello, world!",
        "year": 2024,
        "n": 12,
        "tags": ["a"],
        # What prepare writes into a cold job's directory, and nothing else.
        "files": ["main.ts", "package.json"],
        "home": "/tmp",
        # The job's environment replaced the one the process started with...
        "job": job_id,
        # ...with the runtime's variables over it, as in a cold run.
        "transpilerCache": "0",
    }
    assert "hello world" in logs and "to stderr" in logs
    assert warm_parents(platform) >= 1


async def test_an_error_reads_as_in_a_cold_run(api: httpx.AsyncClient, tmp_path: Path) -> None:
    ok, result, _ = await run(api, FAILING, {"limit": 3})
    assert not ok, result
    cold = await run_job_async(BunRuntime(), FAILING, {"limit": 3}, tmp_path)
    assert not cold.outcome.success
    warm_error, cold_error = result["error"], cold.result["error"]
    assert warm_error["name"] == cold_error["name"] == "RangeError"
    assert warm_error["message"] == cold_error["message"] == "over the limit: 3"

    def frames(stack: str) -> list[str]:
        # The same frames, in the same files and places; only the job's directory differs.
        return [line.split("(")[0] + line.rsplit("/", 1)[-1] for line in stack.splitlines()]

    assert frames(warm_error["stack"]) == frames(cold_error["stack"])
    assert "main.ts:2:" in warm_error["stack"], warm_error["stack"]
    assert "wrapper.mjs" not in warm_error["stack"]


async def test_a_job_exit_code_and_a_stray_error(api: httpx.AsyncClient) -> None:
    ok, result, logs = await run(
        api, 'export function main() { console.log("leaving"); process.exit(3); }\n'
    )
    assert not ok
    assert "exited with code 3" in result["error"]["message"], result
    assert "leaving" in logs
    ok, result, _ = await run(
        api,
        "export async function main() {\n"
        '  setTimeout(() => { throw new TypeError("from a timer"); }, 10);\n'
        "  await new Promise((resolve) => setTimeout(resolve, 5000));\n"
        "}\n",
    )
    assert not ok
    assert result["error"]["name"] == "TypeError"
    assert result["error"]["message"] == "from a timer"


async def test_a_jobs_state_is_not_seen_by_the_next_job(api: httpx.AsyncClient) -> None:
    leave = """\
import { writeFileSync } from "node:fs";

export function main() {
  (globalThis as any).leftOver = 1;
  process.env.LEFT_OVER = "1";
  writeFileSync("left.txt", "x");
  writeFileSync("/tmp/left.txt", "x");
  return process.argv.includes("--warm") ? 1 : 0;
}
"""
    look = """\
import { existsSync } from "node:fs";

export function main() {
  return [
    (globalThis as any).leftOver ?? null,
    process.env.LEFT_OVER ?? null,
    existsSync("left.txt"),
    existsSync("/tmp/left.txt"),
  ];
}
"""
    ok, result, _ = await run(api, leave)
    assert ok and result == 1, result
    for _ in range(3):  # the next jobs, whichever prepared process each one gets
        ok, result, _ = await run(api, look)
        assert ok and result == [None, None, False, False], result


async def test_a_timeout_kills_the_job(api: httpx.AsyncClient) -> None:
    started = time.monotonic()
    ok, result, logs = await run(api, SLEEPER, timeout=2)
    assert not ok
    assert "timed out after 2 s" in result["error"]["message"], result
    assert "started" in logs
    assert time.monotonic() - started < 15
    ok, result, _ = await run(api, 'export function main() { return "next"; }\n')
    assert ok and result == "next"


async def test_cancel_kills_the_job(api: httpx.AsyncClient) -> None:
    job_id = await start(api, SLEEPER)

    async def started() -> bool:
        return "started" in (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text

    await wait_until(started, timeout=30.0)
    await api.post(f"/w/main/jobs_u/queue/cancel/{job_id}", json={"reason": "enough"})
    ok, result, _ = await outcome(api, job_id)
    assert not ok
    assert result != "too late"


async def test_a_huge_result_is_refused(api: httpx.AsyncClient) -> None:
    ok, result, _ = await run(api, 'export function main() { return "a".repeat(3_000_000); }\n')
    assert not ok
    assert result["error"]["name"] == "ResultTooLarge"
    assert "over the limit of 1 MB" in result["error"]["message"]


@pytest.mark.parametrize("language", ["bun", "deno"])
async def test_a_script_with_dependencies_runs_warm(
    api: httpx.AsyncClient, registry: None, platform: Platform, language: str
) -> None:
    # With what a cold run has of its lock, read-only: Bun's node_modules (the lock's
    # installed directory), Deno's lock file and DENO_DIR.
    if language == "deno":
        require_toolchain(DenoRuntime())
    specifier = "is-number@7.0.0" if language == "bun" else "npm:is-number@7.0.0"
    pid = (
        'process.argv.includes("--warm") ? 1 : 0'
        if language == "bun"
        else 'Deno.args.includes("--warm") ? 1 : 0'
    )
    code = (
        f'import isNumber from "{specifier}";\n'
        "export function main(x: string) {\n"
        f"  return [isNumber(x), {pid}];\n"
        "}\n"
    )
    before = warm_parents(platform)
    ok, result, logs = await run(api, code, {"x": "42"}, language=language)
    assert ok, (result, logs)
    assert result == [True, 1]
    ok, result, logs = await run(api, code, {"x": "forty-two"}, language=language)
    assert ok and result == [False, 1], (result, logs)
    assert warm_parents(platform) > before  # the lock's environment has a parent of its own


async def test_a_deno_job_runs_warm(api: httpx.AsyncClient) -> None:
    require_toolchain(DenoRuntime())
    code = """\
export function main(name: string) {
  console.log(`hello ${name}`);
  return { pid: Deno.args.includes("--warm") ? 1 : 0, greeting: `Hello, ${name}!`, job: Deno.env.get("WM_JOB_ID") };
}
"""
    job_id = await start(api, code, {"name": "deno"}, language="deno")
    ok, result, logs = await outcome(api, job_id)
    assert ok, (result, logs)
    assert result == {"pid": 1, "greeting": "Hello, deno!", "job": job_id}
    assert "hello deno" in logs
    ok, result, _ = await run(api, FAILING, {"limit": 5}, language="deno")
    assert not ok
    assert result["error"]["name"] == "RangeError"
    assert result["error"]["message"] == "over the limit: 5"
    assert "main.ts:2:" in result["error"]["stack"]


@pytest.mark.parametrize("language", ["bun", "deno"])
async def test_large_arguments_reach_a_warm_job(api: httpx.AsyncClient, language: str) -> None:
    # Many reads of the job socket: 3 MB of arguments (the result stays under this module's
    # 1 MB cap).
    if language == "deno":
        require_toolchain(DenoRuntime())
    code = "export function main(text: string) {\n  return [text.length, text.slice(-3)];\n}\n"
    ok, result, logs = await run(api, code, {"text": "é" * 1_500_000 + "end"}, language=language)
    assert ok, (result, logs)
    assert result == [1_500_003, "end"]
