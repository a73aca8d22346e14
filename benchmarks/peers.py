"""Gristmill's peers on the same flow workloads: Prefect 3 and DBOS Transact.

Run through ``benchmarks/run.py --peers`` (beside Gristmill's flows) or ``--peers-only``.
Each peer lives in its own virtual environment under ``benchmarks/.peers/`` (git-ignored),
created by ``uv venv`` on the interpreter that runs the benchmarks (resolved: the real
binary, not a shim or this project's ``.venv``), with the peer pinned below installed by
``uv pip install``; it is made once and reused while the pin stays the same.

Each peer runs a small workload script of ``benchmarks/peer_workloads/`` with its own
environment's interpreter: one warm-up run, then ``reps`` timed runs of each chain
(Windmill's two workloads, as in ``flows.py``), printed as JSON on a line of its own. DBOS
needs Postgres: an embedded one is started here for it, as the platform's own is (the
project's ``EmbeddedPostgres``: a private cluster in a temporary directory, run as
``nobody`` under root, same settings as ``gristmill up``'s), and removed afterwards.

A peer that cannot be installed or run reports its error in its row; the others go on.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

Row = tuple[str, str, str]
#: (steps, n, reps): a chain of ``steps`` sequential ``fibo(n)`` steps, timed ``reps`` times.
Chain = tuple[int, int, int]

HERE = Path(__file__).resolve().parent
WORKLOADS = HERE / "peer_workloads"
CACHE = HERE / ".peers"
#: The line of a workload's stdout carrying its result (``peer_workloads/chain_common.py``).
RESULT_PREFIX = "GRISTMILL-PEER-RESULT "
INSTALL_TIMEOUT_S = 900
RUN_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Peer:
    key: str
    label: str
    #: The pinned requirement installed in the peer's environment.
    requirement: str
    script: str
    needs_postgres: bool = False
    #: Settings of the peer's process (beyond the inherited environment).
    env: tuple[tuple[str, str], ...] = ()

    @property
    def version(self) -> str:
        return self.requirement.partition("==")[2]


PREFECT = Peer(
    "prefect",
    "Prefect",
    "prefect==3.9.1",
    "prefect_chain.py",
    env=(
        # Its own INFO lines per task run are noise here (the harness reads one line).
        ("PREFECT_LOGGING_LEVEL", "WARNING"),
        # The ephemeral server would phone home from its background services.
        ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
    ),
)
DBOS = Peer("dbos", "DBOS Transact", "dbos==3.4.0", "dbos_chain.py", needs_postgres=True)
PEERS: tuple[Peer, ...] = (PREFECT, DBOS)


class PeerFailed(Exception):
    """A peer that could not be installed or whose workload did not report a result."""


@dataclass(frozen=True)
class ChainResult:
    steps: int
    n: int
    runs_s: tuple[float, ...]

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s)


@dataclass(frozen=True)
class PeerResult:
    peer: str
    version: str
    python: str
    warmup_s: float
    notes: str
    chains: tuple[ChainResult, ...]

    def chain(self, steps: int, n: int) -> ChainResult | None:
        return next((c for c in self.chains if (c.steps, c.n) == (steps, n)), None)


def parse_result(stdout: str) -> PeerResult:
    """The result a workload script printed (the last line with the prefix)."""
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if not lines:
        raise PeerFailed("the workload printed no result")
    try:
        data = json.loads(lines[-1][len(RESULT_PREFIX) :])
        chains = tuple(
            ChainResult(int(c["steps"]), int(c["n"]), tuple(float(t) for t in c["runs_s"]))
            for c in data["chains"]
        )
        result = PeerResult(
            str(data["peer"]),
            str(data["version"]),
            str(data["python"]),
            float(data["warmup_s"]),
            str(data.get("notes", "")),
            chains,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise PeerFailed(f"the workload's result is malformed: {exc!r}") from exc
    if any(not c.runs_s for c in chains):
        raise PeerFailed("the workload reported a chain with no runs")
    return result


def interpreter() -> str:
    """The real interpreter running this: ``sys.executable`` is this project's ``.venv``
    link (or a pyenv shim's target); a peer's venv is made on the binary itself."""
    return os.path.realpath(sys.executable)


def _uv() -> str:
    # ``uv run`` tells its children where its own binary is.
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        raise PeerFailed("uv not found (needed to make the peers' virtual environments)")
    return found


def _clean_env() -> dict[str, str]:
    """This process's environment without what points at this project's own venv."""
    env = dict(os.environ)
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT"):
        env.pop(name, None)
    return env


def _tail(text: str, limit: int = 300) -> str:
    """The last meaningful lines of a failed command's output, on one short line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    text = " ".join(" / ".join(lines[-3:]).split()).replace("|", "/")
    return text if len(text) <= limit else "..." + text[-limit:]


def ensure_venv(peer: Peer, cache: Path = CACHE) -> Path:
    """The python of the peer's environment, made and installed if not already."""
    venv = cache / f"{peer.key}-{peer.version}"
    python = venv / "bin" / "python"
    marker = venv / "gristmill-installed.txt"
    wanted = f"{peer.requirement}\n{interpreter()}\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    uv = _uv()
    # From the cache directory, so that uv finds no project of its own to consider.
    for argv in (
        [uv, "venv", "--quiet", "--python", interpreter(), str(venv)],
        [uv, "pip", "install", "--quiet", "--python", str(python), peer.requirement],
    ):
        try:
            done = subprocess.run(
                argv,
                cwd=cache,
                env=_clean_env(),
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            raise PeerFailed(f"installing {peer.requirement} timed out: {exc}") from exc
        if done.returncode != 0:
            raise PeerFailed(
                f"installing {peer.requirement} failed ({argv[1]} {argv[2]}): "
                f"{_tail(done.stderr or done.stdout)}"
            )
    marker.write_text(wanted)
    return python


def chain_args(chains: Sequence[Chain]) -> list[str]:
    return [str(v) for chain in chains for v in ("--chain", *chain)]


def run_workload(
    peer: Peer, python: Path, chains: Sequence[Chain], database_url: str | None = None
) -> PeerResult:
    argv = [str(python), str(WORKLOADS / peer.script), *chain_args(chains)]
    if database_url is not None:
        argv += ["--database-url", database_url]
    with tempfile.TemporaryDirectory(prefix=f"{peer.key}-", dir=CACHE) as home:
        # A fresh PREFECT_HOME (its SQLite database) each run, so that no run reads the
        # history of earlier ones; HOME too, so that nothing lands in the user's.
        env = {**_clean_env(), **dict(peer.env), "HOME": home, "PREFECT_HOME": home}
        try:
            done = subprocess.run(
                argv, cwd=home, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
            )
        except subprocess.TimeoutExpired as exc:
            raise PeerFailed(f"the workload timed out after {RUN_TIMEOUT_S} s") from exc
    if done.returncode != 0 and RESULT_PREFIX not in done.stdout:
        raise PeerFailed(f"the workload exited with {done.returncode}: {_tail(done.stderr)}")
    return parse_result(done.stdout)


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    """A database URL on a private embedded Postgres, stopped and removed afterwards."""
    from gristmill.db.embedded import EmbeddedPostgres
    from psycopg.conninfo import conninfo_to_dict

    # Not under /tmp: reachable by ``nobody``, which the server runs as under root.
    data_dir = Path(tempfile.mkdtemp(prefix="gristmill-bench-peers-", dir="/var/tmp"))
    data_dir.chmod(0o755)
    server = EmbeddedPostgres(data_dir)
    try:
        params = conninfo_to_dict(server.start())
        # Its own database, created by DBOS on launch; through the unix socket.
        yield (
            f"postgresql://{params['user']}@/dbos_bench?host={params['host']}&port={params['port']}"
        )
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def run_peer(peer: Peer, chains: Sequence[Chain]) -> PeerResult:
    python = ensure_venv(peer)
    if not peer.needs_postgres:
        return run_workload(peer, python, chains)
    with postgres_url() as url:
        return run_workload(peer, python, chains, url)


def chain_label(steps: int, n: int) -> str:
    return f"{steps} steps fibo({n})"


def peer_rows(peer: Peer, outcome: PeerResult | str) -> list[Row]:
    """One row per chain of a peer; one row with its error when it failed."""
    name = f"{peer.label} {peer.version}"
    if isinstance(outcome, str):
        return [(name, "failed", outcome)]
    rows = []
    for chain in outcome.chains:
        total = chain.median_s
        rows.append(
            (
                f"{name}, {chain_label(chain.steps, chain.n)}",
                f"{total:.3f} s total",
                f"{total / chain.steps * 1000:.1f} ms per step; median of {len(chain.runs_s)} "
                f"(fastest {min(chain.runs_s):.3f} s, slowest {max(chain.runs_s):.3f} s); "
                f"warm-up run {outcome.warmup_s:.2f} s; {outcome.notes}; "
                f"Python {outcome.python}",
            )
        )
    return rows


def ratio_rows(totals: Mapping[str, Mapping[tuple[int, int], float]], peers: set[str]) -> list[Row]:
    """For each workload: each system against the fastest peer there, and against Prefect.

    ``totals``: system name (``Gristmill flow`` or a peer's label) -> (steps, n) -> median
    total in seconds; ``peers``: the names in ``totals`` that are peers.
    """
    prefect = f"{PREFECT.label} {PREFECT.version}"
    workloads = sorted({w for by_chain in totals.values() for w in by_chain}, key=lambda w: -w[0])
    rows: list[Row] = []
    for workload in workloads:
        here = {name: t[workload] for name, t in totals.items() if workload in t}
        measured_peers = {name: s for name, s in here.items() if name in peers}
        if not measured_peers:
            continue
        fastest = min(measured_peers, key=lambda name: measured_peers[name])
        for name, total in here.items():
            if name == fastest:
                continue
            detail = f"{total:.3f} s against {fastest} {here[fastest]:.3f} s (fastest peer)"
            if name != prefect and prefect in here and prefect != fastest:
                detail += f"; {total / here[prefect]:.2f}x {prefect} ({here[prefect]:.3f} s)"
            rows.append(
                (
                    f"{name} / fastest peer, {chain_label(*workload)}",
                    f"{total / here[fastest]:.2f}x",
                    detail + "; medians",
                )
            )
    return rows


def measure(
    chains: Sequence[Chain], gristmill: Mapping[tuple[int, int], float] | None = None
) -> list[Row]:
    """Each peer's rows, then the ratios (Gristmill's flow among them when given)."""
    rows: list[Row] = []
    totals: dict[str, dict[tuple[int, int], float]] = {}
    if gristmill:
        totals["Gristmill flow"] = dict(gristmill)
    names: set[str] = set()
    for peer in PEERS:
        name = f"{peer.label} {peer.version}"
        try:
            result = run_peer(peer, chains)
        except PeerFailed as exc:
            rows += peer_rows(peer, str(exc))
            continue
        rows += peer_rows(peer, result)
        names.add(name)
        totals[name] = {(c.steps, c.n): c.median_s for c in result.chains}
    return rows + ratio_rows(totals, names)
