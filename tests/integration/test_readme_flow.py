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
