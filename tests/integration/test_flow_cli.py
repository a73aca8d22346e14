"""`gristmill flow` (test, push, pull, restart) against a real server (uvicorn on 127.0.0.1,
real Postgres, real workers), with a flow folder written as the Windmill CLI writes it
(tests/data/flows/sum_squares.flow: python3 and bash steps, a forloop, a branchone,
javascript and static inputs, a schema). The commands run in this process (click's runner),
their HTTP requests going over the loopback to the served API."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from gristmill.flows import flow_to_dict, load_flow_dir
from gristmill.server.cli import cli
from gristmill.testing.pytest_plugin import SUPERADMIN_SECRET, PgCluster
from gristmill.testing.served import served_settings

FOLDER = Path(__file__).parent.parent / "data" / "flows" / "sum_squares.flow"


@pytest.fixture(scope="module")
def server(pg_cluster: PgCluster, served_platform: Any) -> Iterator[str]:
    with (
        served_settings(pg_cluster, SUPERADMIN_SECRET, "gm-flow-cli-") as settings,
        served_platform(settings) as url,
    ):
        r = httpx.post(
            f"{url}/api/w/main/folders/create",
            json={"name": "shared"},
            headers={"Authorization": f"Bearer {SUPERADMIN_SECRET}"},
        )
        assert r.status_code in (200, 201), r.text
        yield url


def gristmill(url: str, *args: str) -> Result:
    result = CliRunner().invoke(
        cli, ["flow", *args, "--url", url, "--token", SUPERADMIN_SECRET], catch_exceptions=False
    )
    return result


def test_push_run_and_pull_give_back_the_windmill_folder(server: str, tmp_path: Path) -> None:
    pushed = gristmill(server, "push", str(FOLDER), "f/shared/sum_squares")
    assert pushed.exit_code == 0, pushed.output
    assert "created f/shared/sum_squares" in pushed.output
    again = gristmill(server, "push", str(FOLDER), "f/shared/sum_squares")
    assert again.exit_code == 0 and "updated" in again.output, again.output

    api = httpx.Client(
        base_url=f"{server}/api", headers={"Authorization": f"Bearer {SUPERADMIN_SECRET}"}
    )
    stored = api.get("/w/main/flows/get/f/shared/sum_squares").json()
    assert stored["schema"]["required"] == ["n"]
    for args, expected in (({"n": 3, "threshold": 10}, "big: 14"), ({"n": 2}, "small: 5")):
        r = api.post(
            "/w/main/jobs/run_wait_result/f/f/shared/sum_squares",
            json={"threshold": 10, **args},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert r.json() == expected
    # A saved flow's run restarted from its last step: the squares are reused, the branch
    # chosen again with the new threshold; the new job is a run of the same saved flow.
    restarted = gristmill(
        server,
        "restart",
        r.headers["x-job-id"],
        "--from",
        "verdict",
        "--args",
        '{"n": 2, "threshold": 100}',
    )
    assert restarted.exit_code == 0, restarted.output
    assert restarted.output.rstrip().endswith('"small: 5"')
    new_id = re.search(r"flow ([0-9a-f-]{36}): success", restarted.output)
    assert new_id is not None, restarted.output
    new_job = api.get(f"/w/main/jobs_u/get/{new_id.group(1)}").json()
    assert new_job["job_kind"] == "flow" and new_job["script_path"] == "f/shared/sum_squares"
    assert len(api.get(f"/w/main/jobs/list?parent_job={new_id.group(1)}").json()) == 1

    out = tmp_path / "pulled.flow"
    pulled = gristmill(server, "pull", "f/shared/sum_squares", str(out))
    assert pulled.exit_code == 0, pulled.output
    # The folder as `wmill sync pull` writes it: the inline scripts named after their step's
    # summary (else its id), as the CLI names them; the same flow, read back.
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "flow.yaml",
        "say_big.inline_script.sh",
        "say_small.inline_script.py",
        "square.inline_script.py",
        "the_numbers_1..n.inline_script.py",
    ], names
    assert flow_to_dict(load_flow_dir(out)) == flow_to_dict(load_flow_dir(FOLDER))


def test_flow_test_prints_each_step_pins_and_exit_codes(server: str) -> None:
    done = gristmill(server, "test", str(FOLDER), "--args", '{"n": 3, "threshold": 10}')
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert re.match(r"numbers\s+Success\s+\d+\.\d\ds\s+\[1, 2, 3\]$", lines[0]), lines
    assert re.match(r"squares\s+Success\s+.*3 jobs, last: 9$", lines[1]), lines
    assert re.match(r"verdict\s+Success\s+.*\"big: 14\"$", lines[2]), lines
    assert "success" in lines[3] and json.loads("\n".join(lines[4:])) == "big: 14"

    pinned = gristmill(
        server, "test", str(FOLDER), "--args", '{"n": 3, "threshold": 10}', "--pin", "numbers=[1]"
    )
    assert pinned.exit_code == 0, pinned.output
    assert "not run (pinned" in pinned.output.splitlines()[0]
    assert pinned.output.rstrip().endswith('"small: 1"')

    # A failing run exits 1; restarting it from its first step with good args succeeds.
    failed = gristmill(server, "test", str(FOLDER), "--args", '{"n": "three", "threshold": 1}')
    assert failed.exit_code == 1, failed.output
    assert re.match(r"numbers\s+Failure", failed.output), failed.output
    found = re.search(r"flow ([0-9a-f-]{36}): FAILURE", failed.output)
    assert found is not None, failed.output
    restarted = gristmill(
        server, "restart", found.group(1), "--from", "numbers", "--args", '{"n": 1, "threshold": 0}'
    )
    assert restarted.exit_code == 0, restarted.output
    assert restarted.output.rstrip().endswith('"big: 1"')
    refused = gristmill(server, "restart", found.group(1), "--from", "nope")
    assert refused.exit_code == 1, refused.output
    assert "(400)" in refused.output and 'step "nope" is not in the flow' in refused.output
