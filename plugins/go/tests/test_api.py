"""Go scripts end to end: saved through the API, run by real workers on a real Postgres."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from gristmill.testing.contract import require_toolchain
from gristmill_go.runtime import BUILD_CACHE_ENV, GoRuntime

pytestmark = pytest.mark.slow

SCRIPT = """package inner

import "fmt"

type Point struct {
	X int `json:"x"`
	Y int `json:"y"`
}

func main(name string, points []Point, scale float64) (interface{}, error) {
	fmt.Println("scaling", len(points), "points for", name)
	sum := 0.0
	for _, p := range points {
		sum += float64(p.X+p.Y) * scale
	}
	return map[string]interface{}{"name": name, "sum": sum}, nil
}
"""


@pytest.fixture(autouse=True)
def _shared_build_cache(go_build_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Set before the `api` fixture starts the platform, whose Go runtime reads it.
    require_toolchain(GoRuntime())
    monkeypatch.setenv(BUILD_CACHE_ENV, str(go_build_cache))


async def _save(api: httpx.AsyncClient, path: str, content: str) -> httpx.Response:
    return await api.post(
        "/w/main/scripts/create", json={"path": path, "content": content, "language": "golang"}
    )


async def test_a_go_script_runs_through_the_api(api: httpx.AsyncClient) -> None:
    saved = await _save(api, "u/admin/points", SCRIPT)
    assert saved.status_code == 201, saved.text
    script = (await api.get("/w/main/scripts/get/p/u/admin/points")).json()
    assert script["language"] == "go"
    schema = script["schema"]
    assert schema["required"] == ["name", "points", "scale"]
    assert schema["properties"]["points"]["items"]["properties"]["x"]["type"] == "integer"
    assert schema["properties"]["scale"]["type"] == "number"

    args = {"name": "grid", "points": [{"x": 1, "y": 2}, {"x": 3, "y": 4}], "scale": 0.5}
    for _ in range(2):  # the second job runs the cached program
        r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/points", json=args)
        assert r.status_code == 200, r.text
        assert r.json() == {"name": "grid", "sum": 5.0}
    job = (await api.get(f"/w/main/jobs_u/get/{r.headers['x-job-id']}")).json()
    assert job["success"] is True and job["language"] == "go"
    assert "scaling 2 points for grid" in job["logs"]

    # The schema checks arguments before any Go code runs.
    bad = await api.post(
        "/w/main/jobs/run_wait_result/p/u/admin/points",
        json={"name": "grid", "points": [{"x": "one"}], "scale": 1},
    )
    assert bad.status_code == 400 and "points[0].x" in bad.text


async def test_go_failures_come_back_as_errors(api: httpx.AsyncClient) -> None:
    failing = (
        'package inner\n\nimport "fmt"\n\n'
        'func main(n int) (interface{}, error) {\n\treturn nil, fmt.Errorf("n is %d", n)\n}\n'
    )
    assert (await _save(api, "u/admin/failing", failing)).status_code == 201
    r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/failing", json={"n": 7})
    assert r.status_code == 422
    assert r.json()["error"] == {"name": "Error", "message": "n is 7", "stack": ""}

    broken = "package inner\n\nfunc main() int {\n\treturn missing\n}\n"
    assert (await _save(api, "u/admin/broken", broken)).status_code == 201
    r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/broken", json={})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["name"] == "CompilationError"
    assert "main.go:4:9: undefined: missing" in error["message"]


async def test_a_script_go_cannot_run_is_refused_at_save(api: httpx.AsyncClient) -> None:
    r = await _save(api, "u/admin/wrong", "package main\n\nfunc main() {}\n")
    assert r.status_code == 400
    assert "line 1" in r.text and "package inner" in r.text
    r = await _save(api, "u/admin/wrong", "package inner\n\nfunc main(x int {\n}\n")
    assert r.status_code == 400 and "line 3" in r.text
