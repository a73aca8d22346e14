"""End to end through the REST API: real Postgres, real workers, real Bun and Deno."""

from __future__ import annotations

import httpx
import pytest
from gristmill.testing.contract import require_toolchain
from gristmill_typescript.bun import BunRuntime
from gristmill_typescript.deno import DenoRuntime

pytestmark = pytest.mark.slow

SCRIPT = """\
export async function main(name: string, when: Date, times: number = 2, shout?: boolean) {
  console.log(`greeting ${name}`);
  const text = `Hello, ${name}!`.repeat(times);
  return { text: shout ? text.toUpperCase() : text, year: when.getUTCFullYear() };
}
"""

FAILING = """\
export function main(limit: bigint) {
  throw new RangeError(`over the limit: ${limit}`);
}
"""


@pytest.fixture(autouse=True)
def toolchains() -> None:
    require_toolchain(BunRuntime())
    require_toolchain(DenoRuntime())


async def _create(api: httpx.AsyncClient, path: str, content: str, language: str) -> httpx.Response:
    return await api.post(
        "/w/main/scripts/create", json={"path": path, "content": content, "language": language}
    )


async def test_scripts_run_on_bun_and_deno(api: httpx.AsyncClient) -> None:
    for language, path in [("bun", "u/admin/hello_bun"), ("deno", "u/admin/hello_deno")]:
        r = await _create(api, path, SCRIPT, language)
        assert r.status_code == 201, r.text
        script = (await api.get(f"/w/main/scripts/get/p/{path}")).json()
        assert script["language"] == language
        schema = script["schema"]
        # Stored as jsonb, the properties come back in jsonb's key order, not main's: the
        # wrapper takes main's parameter order from the code, never from the schema.
        assert set(schema["properties"]) == {"name", "when", "times", "shout"}
        assert schema["required"] == ["name", "when"]
        assert schema["properties"]["when"]["format"] == "date-time"

        r = await api.post(
            f"/w/main/jobs/run_wait_result/p/{path}",
            # The form sends null for a field left empty: main's default applies.
            json={"name": "Ada", "when": "2024-05-01T10:00:00Z", "times": None, "shout": True},
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"text": "HELLO, ADA!HELLO, ADA!", "year": 2024}
        job = (await api.get(f"/w/main/jobs_u/get/{r.headers['x-job-id']}")).json()
        assert job["success"] is True and job["language"] == language
        assert "greeting Ada" in job["logs"]

        # The API checks arguments against the schema before a worker sees them.
        r = await api.post(f"/w/main/jobs/run_wait_result/p/{path}", json={"name": "Ada"})
        assert r.status_code == 400 and "when" in r.text


async def test_typescript_alias_stores_bun(api: httpx.AsyncClient) -> None:
    r = await _create(api, "u/admin/aliased", SCRIPT, "typescript")
    assert r.status_code == 201, r.text
    assert (await api.get("/w/main/scripts/get/p/u/admin/aliased")).json()["language"] == "bun"


@pytest.mark.parametrize("language", ["bun", "deno"])
async def test_failures_and_bad_scripts(api: httpx.AsyncClient, language: str) -> None:
    r = await _create(api, "u/admin/fails", FAILING, language)
    assert r.status_code == 201, r.text
    r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/fails", json={"limit": 7})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["name"] == "RangeError" and error["message"] == "over the limit: 7"
    assert "main.ts:2" in error["stack"]

    bad = await _create(api, "u/admin/bad", "export function main(x: string {\n}\n", language)
    assert bad.status_code == 400
    assert "line 1, column" in bad.text and "missing ')'" in bad.text
    missing = await _create(api, "u/admin/bad", "export const x = 1;\n", language)
    assert missing.status_code == 400 and "export async function main" in missing.text
