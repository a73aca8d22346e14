"""`benchmarks/chaos.py --small` as CI runs it (issue 15, point 8): the one-machine experiments
(kill -9 of a worker under load, SIGTERM of `gristmill up` under load with `run_wait_result`
callers, kill -9 of the embedded Postgres), each accounted job by job. One run of the real
command (a module fixture); each test reads one row of its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

CHAOS = Path(__file__).parents[2] / "benchmarks" / "chaos.py"


@pytest.fixture(scope="module")
def rows() -> dict[str, dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, str(CHAOS), "--small", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=170)
    except subprocess.TimeoutExpired:
        # SIGTERM first: chaos.py then stops what it started (platforms, Postgres).
        process.terminate()
        stdout, stderr = process.communicate(timeout=60)
        pytest.fail(f"chaos.py --small did not end within 170 s:\n{stderr[-4000:]}")
    assert process.returncode == 0, stderr[-4000:]
    outcomes = json.loads(stdout)["outcomes"]
    print("\n" + stderr[-2000:] + "\n" + json.dumps(outcomes, indent=1))
    return {row["experiment"]: row for row in outcomes}


EXPERIMENTS = ["kill -9 a worker", "SIGTERM under load", "embedded Postgres killed"]


@pytest.mark.timeout(200)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_nothing_lost(rows: dict[str, dict[str, Any]], experiment: str) -> None:
    row = rows[experiment]
    assert row["submitted"] > 0, row
    assert row["lost"] == 0, row


@pytest.mark.timeout(200)
@pytest.mark.parametrize(
    "experiment", ["kill -9 a worker", "SIGTERM under load", "embedded Postgres killed"]
)
def test_nothing_recorded_twice(rows: dict[str, dict[str, Any]], experiment: str) -> None:
    assert rows[experiment]["recorded_twice"] == 0, rows[experiment]


@pytest.mark.timeout(200)
def test_a_stop_runs_nothing_twice(rows: dict[str, dict[str, Any]]) -> None:
    """Jobs running at SIGTERM finish within the grace period or are requeued unstarted-over:
    none runs twice (its host did not die)."""
    assert rows["SIGTERM under load"]["executed_twice"] == 0, rows["SIGTERM under load"]
