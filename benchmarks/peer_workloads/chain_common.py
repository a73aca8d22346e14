"""What the peers' workload scripts share: the step's work, the arguments, the timing loop and
the JSON they print for ``benchmarks/peers.py``.

Run by each peer's own virtual environment (never Gristmill's), so it uses the standard
library only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

#: The line of stdout that carries the result; everything else a peer prints is its own.
RESULT_PREFIX = "GRISTMILL-PEER-RESULT "


def fibo(n: int) -> int:
    # The same naive recursion as Gristmill's benchmark step (benchmarks/flows.py STEP).
    return n if n < 2 else fibo(n - 1) + fibo(n - 2)


def step_work(n: int, i: int) -> int:
    """One step: ``fibo(n)``, then the index passed on, one higher (as Gristmill's step)."""
    fibo(n)
    return i + 1


def parse_chains() -> list[tuple[int, int, int]]:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--chain",
        nargs=3,
        type=int,
        action="append",
        required=True,
        metavar=("STEPS", "N", "REPS"),
        help="a chain of STEPS sequential fibo(N) steps, timed REPS times",
    )
    return [tuple(chain) for chain in parser.parse_args().chain]  # type: ignore[misc]


def measure(
    peer: str,
    version: str,
    chain: Callable[[int, int], int],
    chains: list[tuple[int, int, int]],
    notes: str = "",
) -> None:
    """Time ``chain(steps, n)``: one warm-up run of the first chain (imports, connections,
    a peer's server start-up are paid there), then ``reps`` runs of each; print the JSON."""
    results = []
    warmup_s: float | None = None
    for steps, n, reps in chains:
        if warmup_s is None:
            warmup_s = _timed(chain, steps, n)
        runs = [_timed(chain, steps, n) for _ in range(reps)]
        results.append({"steps": steps, "n": n, "runs_s": runs})
    out = {
        "peer": peer,
        "version": version,
        "python": sys.version.split()[0],
        "warmup_s": warmup_s,
        "notes": notes,
        "chains": results,
    }
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(out), flush=True)


def _timed(chain: Callable[[int, int], int], steps: int, n: int) -> float:
    start = time.perf_counter()
    result = chain(steps, n)
    elapsed = time.perf_counter() - start
    if result != steps:
        raise SystemExit(f"the chain returned {result!r}, not {steps}: steps did not run in order")
    return elapsed
