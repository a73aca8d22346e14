"""Prefect 3: a ``@flow`` calling ``steps`` ``@task``s in sequence, each ``fibo(n)``.

Run by the Prefect peer's virtual environment (``benchmarks/peers.py``). Tasks run in this
process, called one after the other from the flow (no task runner, no workers); each flow and
task run is recorded through Prefect's API in its ephemeral mode: with no ``PREFECT_API_URL``,
Prefect starts a temporary local server (SQLite under ``PREFECT_HOME``) for this process.
"""

# pyright: reportMissingImports=false

from __future__ import annotations

import chain_common
import prefect
from prefect import flow, task


@task
def fibo_step(n: int, i: int) -> int:
    return chain_common.step_work(n, i)


@flow
def fibo_chain(steps: int, n: int) -> int:
    i = 0
    for _ in range(steps):
        i = fibo_step(n, i)
    return i


def main() -> None:
    chain_common.measure(
        "prefect",
        prefect.__version__,
        lambda steps, n: fibo_chain(steps, n),
        chain_common.parse_chains(),
        notes="in-process tasks; ephemeral local server, SQLite",
    )


if __name__ == "__main__":
    main()
