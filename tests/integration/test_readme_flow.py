"""The README's flow example, verbatim: the JSON bodies of its `api ...` lines are sent as
the README's shell function sends them, and the result is the one its comment shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

JSON = {"content-type": "application/json"}
README = Path(__file__).parents[2] / "README.md"


def _calls() -> list[tuple[str, str]]:
    text = README.read_text()
    start = text.index("api flows/create '")
    block = text[start : text.index("```", start)]
    return re.findall(r"^api (\S+) '(.*)'$", block, flags=re.M)


async def test_the_readme_flow_example_runs_as_written(api: httpx.AsyncClient) -> None:
    text = README.read_text()
    (create, run) = _calls()
    assert create[0] == "flows/create" and run[0].startswith("jobs/run_wait_result/f/")
    # The shell keeps `\\n` inside single quotes: JSON reads it as a newline.
    r = await api.post(f"/w/main/{create[0]}", content=create[1], headers=JSON)
    assert r.status_code == 201, r.text
    r = await api.post(f"/w/main/{run[0]}", content=run[1], headers=JSON)
    assert r.status_code == 200, r.text
    expected = re.search(r"^api jobs/run_wait_result/f/.*\n# (.+)$", text, flags=re.M)
    assert expected is not None
    assert r.json() == json.loads(expected.group(1))


async def test_the_readme_triggers_example_runs_as_written(api: httpx.AsyncClient) -> None:
    """The README's triggers block: the route answers as its comment says, the schedule's
    runs appear in the list its curl line reads, and the schedule is then disabled."""
    import asyncio
    import time

    text = README.read_text()
    hello = re.search(r"-d '(\{\"path\": \"u/admin/hello\".*)'$", text, flags=re.M)
    assert hello is not None
    r = await api.post("/w/main/scripts/create", content=hello.group(1), headers=JSON)
    assert r.status_code == 201, r.text
    start = text.index("api http_triggers/create '")
    block = text[start : text.index("```", start)]
    calls = re.findall(r"^api (\S+) '(.*)'$", block, flags=re.M)
    assert [c[0] for c in calls] == [
        "http_triggers/create",
        "schedules/create",
        "schedules/setenabled/u/admin/hello_every_5s",
    ]
    route = re.search(
        r"^curl -X POST localhost:8000/api(/r/\S+) .* -d '(.*)'\n# (.+)$", block, re.M
    )
    listing = re.search(r'^curl -s "localhost:8000/api(/w/main/jobs/list\?\S+)"', block, re.M)
    assert route is not None and listing is not None
    r = await api.post(f"/w/main/{calls[0][0]}", content=calls[0][1], headers=JSON)
    assert r.status_code == 201, r.text
    r = await api.post(route.group(1), content=route.group(2), headers=JSON)
    assert (r.status_code, r.json()) == (200, json.loads(route.group(3)))
    r = await api.post(f"/w/main/{calls[1][0]}", content=calls[1][1], headers=JSON)
    assert r.status_code == 201, r.text
    deadline = time.monotonic() + 15
    while True:
        runs = (await api.get(listing.group(1))).json()
        if runs:
            break
        assert time.monotonic() < deadline, "no scheduled run within 15 s"
        await asyncio.sleep(0.2)
    assert {run["trigger_kind"] for run in runs} == {"schedule"}
    r = await api.post(f"/w/main/{calls[2][0]}", content=calls[2][1], headers=JSON)
    assert r.status_code == 200, r.text
