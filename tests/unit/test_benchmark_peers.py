"""The peers' benchmark harness (benchmarks/peers.py), its pure parts: the workload scripts'
JSON protocol, the rows and the ratios. No test installs or runs a peer (Prefect, DBOS):
that takes minutes and the network; ``benchmarks/run.py --peers-only`` does it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


peers = _load("gristmill_bench_peers", BENCHMARKS / "peers.py")
chain_common = _load(
    "gristmill_bench_chain_common", BENCHMARKS / "peer_workloads" / "chain_common.py"
)


def _plain_chain(steps: int, n: int) -> int:
    i = 0
    for _ in range(steps):
        i = chain_common.step_work(n, i)
    return i


def test_a_workload_result_round_trips(capsys: pytest.CaptureFixture[str]) -> None:
    # The workload scripts' side (run in a peer's venv) printing, the harness's parsing.
    print("a peer's own chatter")
    chain_common.measure("plain", "1.0", _plain_chain, [(4, 5, 3), (2, 8, 2)], notes="n/a")
    result = peers.parse_result(capsys.readouterr().out)
    assert (result.peer, result.version, result.notes) == ("plain", "1.0", "n/a")
    assert result.warmup_s > 0
    assert [(c.steps, c.n, len(c.runs_s)) for c in result.chains] == [(4, 5, 3), (2, 8, 2)]
    assert result.chain(2, 8) is result.chains[1]
    assert result.chain(40, 10) is None


def test_a_chain_whose_steps_did_not_all_run_fails() -> None:
    with pytest.raises(SystemExit, match="not 3"):
        chain_common.measure("broken", "0", lambda steps, n: steps - 1, [(3, 1, 1)])


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        ("Traceback ...\nImportError: no module named dbos\n", "printed no result"),
        (peers.RESULT_PREFIX + "{not json", "malformed"),
        (peers.RESULT_PREFIX + '{"peer": "x"}', "malformed"),
        (
            peers.RESULT_PREFIX
            + '{"peer": "x", "version": "1", "python": "3", "warmup_s": 1,'
            + ' "chains": [{"steps": 40, "n": 10, "runs_s": []}]}',
            "no runs",
        ),
    ],
)
def test_a_missing_or_malformed_result_is_a_peer_failure(stdout: str, message: str) -> None:
    with pytest.raises(peers.PeerFailed, match=message):
        peers.parse_result(stdout)


def test_the_prefix_is_the_same_on_both_sides() -> None:
    assert peers.RESULT_PREFIX == chain_common.RESULT_PREFIX


def test_chain_arguments() -> None:
    assert peers.chain_args([(40, 10, 5), (10, 33, 2)]) == [
        *("--chain", "40", "10", "5"),
        *("--chain", "10", "33", "2"),
    ]


def test_a_peer_row_per_chain_and_a_failed_peer_row() -> None:
    result = peers.PeerResult(
        "dbos", "3.4.0", "3.11.7", 0.2, "notes", (peers.ChainResult(40, 10, (0.09, 0.08, 0.1)),)
    )
    [row] = peers.peer_rows(peers.DBOS, result)
    assert row[0] == f"DBOS Transact {peers.DBOS.version}, 40 steps fibo(10)"
    assert row[1] == "0.090 s total"
    assert "2.2 ms per step; median of 3 (fastest 0.080 s, slowest 0.100 s)" in row[2]
    assert peers.peer_rows(peers.PREFECT, "no network | here") == [
        (f"Prefect {peers.PREFECT.version}", "failed", "no network | here")
    ]


def test_ratios_against_the_fastest_peer_and_prefect() -> None:
    prefect = f"Prefect {peers.PREFECT.version}"
    dbos = f"DBOS Transact {peers.DBOS.version}"
    totals = {
        "Gristmill flow": {(40, 10): 1.0, (10, 33): 4.6},
        prefect: {(40, 10): 2.0, (10, 33): 4.5},
        dbos: {(40, 10): 0.1, (10, 33): 4.4},
    }
    rows = peers.ratio_rows(totals, {prefect, dbos})
    assert [(name, value) for name, value, _ in rows] == [
        ("Gristmill flow / fastest peer, 40 steps fibo(10)", "10.00x"),
        (f"{prefect} / fastest peer, 40 steps fibo(10)", "20.00x"),
        ("Gristmill flow / fastest peer, 10 steps fibo(33)", "1.05x"),
        (f"{prefect} / fastest peer, 10 steps fibo(33)", "1.02x"),
    ]
    assert f"0.50x {prefect} (2.000 s)" in rows[0][2]


def test_ratios_skip_a_failed_peer_and_need_one_peer() -> None:
    prefect = f"Prefect {peers.PREFECT.version}"
    # DBOS failed: Prefect is then the fastest peer, and the ratio to Prefect is that one.
    rows = peers.ratio_rows(
        {"Gristmill flow": {(40, 10): 1.0}, prefect: {(40, 10): 2.0}}, {prefect}
    )
    assert rows == [
        (
            "Gristmill flow / fastest peer, 40 steps fibo(10)",
            "0.50x",
            f"1.000 s against {prefect} 2.000 s (fastest peer); medians",
        )
    ]
    assert peers.ratio_rows({"Gristmill flow": {(40, 10): 1.0}}, set()) == []
