"""DBOS Transact: a ``@DBOS.workflow()`` calling ``steps`` ``@DBOS.step()``s in sequence, each
``fibo(n)``, every step's output checkpointed in Postgres before the next one starts.

Run by the DBOS peer's virtual environment (``benchmarks/peers.py``), which passes the system
database's URL (an embedded Postgres started by the harness) in ``--database-url``.
"""

# pyright: reportMissingImports=false

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version

import chain_common
from dbos import DBOS, DBOSConfig


@DBOS.step()
def fibo_step(n: int, i: int) -> int:
    return chain_common.step_work(n, i)


@DBOS.workflow()
def fibo_chain(steps: int, n: int) -> int:
    i = 0
    for _ in range(steps):
        i = fibo_step(n, i)
    return i


def main() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--database-url", required=True)
    known, rest = parser.parse_known_args()
    sys.argv[1:] = rest  # the chains, for chain_common
    config: DBOSConfig = {
        "name": "gristmill-bench",
        "system_database_url": known.database_url,
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    try:
        chain_common.measure(
            "dbos",
            version("dbos"),
            fibo_chain,
            chain_common.parse_chains(),
            notes="steps checkpointed in Postgres, one process",
        )
    finally:
        DBOS.destroy()


if __name__ == "__main__":
    main()
